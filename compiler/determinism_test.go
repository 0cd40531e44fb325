package compiler_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestDeterminism compiles every golden case several times with its input
// files in shuffled order (Go's map iteration is randomised on every run
// too) and requires byte-identical artifacts.
func TestDeterminism(t *testing.T) {
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			_, first, err := compileCase(c, c.names)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
			for i := 0; i < 4; i++ {
				names := append([]string(nil), c.names...)
				rng.Shuffle(len(names), func(a, b int) { names[a], names[b] = names[b], names[a] })
				_, again, err := compileCase(c, names)
				if err != nil {
					t.Fatal(err)
				}
				if len(again) != len(first) {
					t.Fatalf("run %d: %d nodes, first run %d", i, len(again), len(first))
				}
				for j, a := range again {
					for name, b := range first[j].Files {
						if !bytes.Equal(a.Files[name], b) {
							t.Errorf("run %d with files %v: node %s: %s differs", i, names, a.Node, name)
						}
					}
				}
			}
		})
	}
}
