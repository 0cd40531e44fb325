// Package schemas holds the ebpfc configuration language: CUE definitions
// that every input file is unified with. The files are embedded so that the
// compiler and the `ebpfc schema` command carry the exact schema they check
// against.
//
// Every file is in package ebpfc and imports at most standard CUE packages,
// each with a single `import "pkg"` line, so that Source can join them into
// one file that `cue vet` accepts.
package schemas

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

// FS holds the schema files (*.cue).
//
//go:embed *.cue
var FS embed.FS

// Files returns the names of the schema files in FS, sorted.
func Files() []string {
	names, err := fs.Glob(FS, "*.cue")
	if err != nil {
		panic(err) // the pattern is constant and valid
	}
	slices.Sort(names)
	return names
}

// Source returns the whole schema as one CUE file in package ebpfc: one
// package clause, the imports of every file, then each file's body. Users
// check their files with it:
//
//	ebpfc schema > schema.cue && cue vet schema.cue *.cue
func Source() string {
	var imports []string
	var bodies strings.Builder
	for _, name := range Files() {
		data, err := FS.ReadFile(name)
		if err != nil {
			panic(err) // embedded files are always readable
		}
		bodies.WriteString("\n// ---- " + name + " ----\n")
		for line := range strings.Lines(string(data)) {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, "package "):
				continue
			case strings.HasPrefix(trimmed, "import \""):
				if !slices.Contains(imports, trimmed) {
					imports = append(imports, trimmed)
				}
				continue
			}
			bodies.WriteString(line)
		}
	}
	slices.Sort(imports)
	var b strings.Builder
	b.WriteString("// The ebpfc configuration schema. Check files with:\n")
	b.WriteString("//\n//\tebpfc schema > schema.cue && cue vet schema.cue *.cue\n")
	b.WriteString("package ebpfc\n\n")
	for _, imp := range imports {
		b.WriteString(imp + "\n")
	}
	b.WriteString(bodies.String())
	return b.String()
}
