package compiler_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
)

// exampleDirs returns the example configurations shipped with ebpfc.
func exampleDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("../examples/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	return dirs
}

// TestExamplesDeterministic compiles every example twice and requires
// byte-identical artifacts, as "ebpfc compile examples/X -o out" run twice
// must give identical trees.
func TestExamplesDeterministic(t *testing.T) {
	for _, dir := range exampleDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			first, err := compiler.CompileDir(dir, compiler.Options{})
			if err != nil {
				t.Fatal(err)
			}
			again, err := compiler.CompileDir(dir, compiler.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range first {
				for name, b := range a.Files {
					if !bytes.Equal(again[i].Files[name], b) {
						t.Errorf("node %s: %s differs between two runs", a.Node, name)
					}
				}
			}
		})
	}
}
