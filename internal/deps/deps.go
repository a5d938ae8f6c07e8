package deps
import (
 _ "github.com/fxamacker/cbor/v2"
 _ "github.com/pelletier/go-toml/v2"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "github.com/prometheus/common/expfmt"
 _ "golang.org/x/sys/unix"
 _ "go.uber.org/goleak"
)
