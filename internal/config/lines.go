package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex maps key paths ("deadline", "listener[1]", "listener[1].address",
// "env.KVD_LOG") to the 1-based line where they appear.
type lineIndex map[string]int

// keyLines indexes the lines of every key and table header of a document
// that already decoded without error. It tolerates anything: a key it cannot
// place just has no line.
func keyLines(data []byte) lineIndex {
	idx := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			idx.add(joinKey(prefix, keyParts(e)), line(&p, e.Key()))
		case unstable.Table:
			prefix = keyParts(e)
			idx.add(prefix, line(&p, e.Key()))
		case unstable.ArrayTable:
			name := keyParts(e)
			prefix = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
			idx.add(prefix, line(&p, e.Key()))
		}
	}
	return idx
}

func (idx lineIndex) add(key string, line int) {
	if _, ok := idx[key]; !ok && line > 0 {
		idx[key] = line
	}
}

// lookup returns the line of key, or of its closest enclosing key or table
// ("listener[1]" for a missing "listener[1].address"), or 0.
func (idx lineIndex) lookup(key string) int {
	for key != "" {
		if l, ok := idx[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// arrayIndexAt returns the index of the last [[name]] table starting at or
// before line, or -1.
func (idx lineIndex) arrayIndexAt(name string, line int) int {
	best := -1
	for i := 0; ; i++ {
		l, ok := idx[fmt.Sprintf("%s[%d]", name, i)]
		if !ok || l > line {
			return best
		}
		best = i
	}
}

func keyParts(e *unstable.Node) string {
	var parts []string
	it := e.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// line returns the line of the first key part of an expression.
func line(p *unstable.Parser, it unstable.Iterator) int {
	if !it.Next() {
		return 0
	}
	return p.Shape(it.Node().Raw).Start.Line
}
