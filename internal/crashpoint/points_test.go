package crashpoint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"testing"
)

var pointName = regexp.MustCompile(`^(supervisor|incumbent|successor)\.[a-z0-9]+(-[a-z0-9]+)*$`)

func TestAll_namesAreWellFormedAndUnique(t *testing.T) {
	if len(All) < 22 {
		t.Fatalf("%d points, want at least 22", len(All))
	}
	seen := map[Point]bool{}
	perRole := map[string]int{}
	for _, p := range All {
		if !pointName.MatchString(string(p)) {
			t.Errorf("point %q is not <role>.<kebab-case-name>", p)
		}
		if seen[p] {
			t.Errorf("point %q listed twice", p)
		}
		seen[p] = true
		perRole[p.Role()]++
	}
	for _, role := range []string{"supervisor", "incumbent", "successor"} {
		if perRole[role] < 5 {
			t.Errorf("role %s has %d points, want every protocol boundary covered (at least 5)", role, perRole[role])
		}
	}
}

// Every Point constant declared in points.go must be in All, or the crash
// matrix would silently skip it.
func TestAll_listsEveryDeclaredPoint(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "points.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := declaredPoints(f)
	if len(declared) != len(All) {
		t.Errorf("points.go declares %d Point constants, All lists %d", len(declared), len(All))
	}
	for _, name := range declared {
		if !slices.Contains(All, name) {
			t.Errorf("point %q is declared but missing from All", name)
		}
	}
}

// declaredPoints returns the values of the constants of type Point in f.
func declaredPoints(f *ast.File) []Point {
	var out []Point
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Point" {
			return true
		}
		for _, v := range vs.Values {
			if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				out = append(out, Point(lit.Value[1:len(lit.Value)-1]))
			}
		}
		return true
	})
	return out
}
