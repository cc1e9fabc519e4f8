// Package profiles holds the country profiles compiled into the binary, so
// that `--profile gambella` works on a machine with nothing but refbridge on it.
// Package profile reads them through FS; nothing else should.
package profiles

import (
	"embed"
	"io/fs"
)

// files must be a package-level variable: go:embed can only fill one.
//
//go:embed *.yaml
var files embed.FS

// FS returns the embedded profiles, one NAME.yaml file per country profile.
func FS() fs.FS { return files }
