//go:build linux

package compiler_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/randpolicy"
	"github.com/ebpfc/ebpfc/internal/testenv"
)

// savedDifferentialCases reads every case under testdata/differential.
func savedDifferentialCases(t *testing.T) map[string]*randpolicy.Saved {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(differentialDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*randpolicy.Saved{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := randpolicy.ParseSaved(p, data)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = s
	}
	return out
}

// TestDifferentialCasesParse: every saved case is well formed: its
// configuration loads and compiles and its probe line parses. This needs no
// kernel, so a broken case shows even where the replay cannot run.
func TestDifferentialCasesParse(t *testing.T) {
	for path, s := range savedDifferentialCases(t) {
		cfg, err := randpolicy.Load(s.Files)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if _, err := compiler.Compile(cfg, compiler.Options{}); err != nil {
			t.Errorf("%s: compile: %v", path, err)
		}
		if _, err := randpolicy.ParseProbe(s.Probe); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestDifferentialRegressions replays every saved disagreement: the probe
// through the compiled programs in the kernel and through the reference
// evaluator. A case records a disagreement found by TestDifferential; the
// replay passes once the two agree on it, and then keeps them agreeing.
func TestDifferentialRegressions(t *testing.T) {
	testenv.RequireKernel(t)
	cases := savedDifferentialCases(t)
	t.Logf("%d saved cases in %s", len(cases), differentialDir)
	for _, path := range slices.Sorted(maps.Keys(cases)) {
		s := cases[path]
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, err := randpolicy.ParseProbe(s.Probe)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			st, err := runCase(s.Files, p)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if randpolicy.FirstDisagreement(st) >= 0 {
				t.Errorf("compiler/%s: the reference and the kernel still disagree on %s:\n%s", filepath.ToSlash(path), s.Probe, stepLines(st))
			}
		})
	}
}
