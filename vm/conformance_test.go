package vm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/asmtext"
)

// The bpf_conformance suite (MIT licence, testdata/bpf_conformance/LICENSE)
// is copied into testdata so the tests need nothing outside the repository.
const conformanceDir = "testdata/bpf_conformance"

// Stages at which a conformance file can be refused.
const (
	stageParse    = "parse"    // the .data file itself is malformed
	stageAssemble = "assemble" // the assembler refuses the program
	stageLoad     = "load"     // the interpreter refuses the encoding
	stageRun      = "run"      // the run faults
	stageResult   = "result"   // the program runs but r0 (or the expected error) differs
)

// conformance runs one .data file and returns "" when it assembles, loads,
// runs and gives the expected r0, or the stage that refused it and why. A
// file that expects an error and runs to completion is refused at
// stageResult.
func conformance(t *testing.T, path string) (stage string, why string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := asmtext.ParseData(path, src)
	if err != nil {
		return stageParse, err.Error()
	}
	insns, err := d.Program()
	if err != nil {
		return stageAssemble, err.Error()
	}
	if d.HasRaw && d.HasAsm {
		enc, err := asmtext.Encode(insns)
		if err != nil {
			return stageAssemble, err.Error()
		}
		if !bytes.Equal(enc, d.Raw) {
			return stageAssemble, "encoding differs from -- raw:\n got " + hexWords(enc) + "\nwant " + hexWords(d.Raw)
		}
	}
	if !d.HasResult && !d.HasError {
		return stageParse, "no -- result or -- error section"
	}
	res, err := vm.RunMem(insns, append([]byte(nil), d.Mem...), vm.Options{})
	if err != nil {
		var le *vm.LoadError
		if asLoadError(err, &le) {
			return stageLoad, err.Error()
		}
		return stageRun, err.Error()
	}
	if d.HasError && !d.HasResult {
		return stageResult, "expected an error (" + d.Error + "), the program returned"
	}
	if res.Return != d.Result {
		return stageResult, "r0 = " + hex64(res.Return) + ", want " + hex64(d.Result)
	}
	return "", ""
}

// outOfScope lists conformance programs the interpreter does not pass on
// purpose, with the reason. It is empty: every program passes.
var outOfScope = map[string]string{}

// negativeStage says at which stage each negative case must be refused.
func negativeStage(name string) string {
	switch {
	case strings.HasPrefix(name, "unused-"):
		// Raw encodings with a reserved field set: the interpreter's
		// decoder refuses them as the kernel's verifier does.
		return stageLoad
	case name == "invalid_unknown_directive":
		return stageParse
	case name == "incorrect_return_value_high_bits":
		// The expected result is wrong in its high bits: the program runs
		// and the comparison of all 64 bits fails.
		return stageResult
	case name == "error":
		// Expects an error from a valid program (or r0, r10; exit).
		return stageResult
	}
	// invalid_*, empty, empty_instructions: nothing the assembler accepts.
	return stageAssemble
}

func TestConformance(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(conformanceDir, "tests", "*.data"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no conformance tests in %s: %v", conformanceDir, err)
	}
	negatives, err := filepath.Glob(filepath.Join(conformanceDir, "negative", "*.data"))
	if err != nil || len(negatives) == 0 {
		t.Fatalf("no negative conformance tests: %v", err)
	}
	pass, run, errCases, refused := 0, 0, 0, 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".data")
		src, _ := os.ReadFile(p)
		expectsError := bytes.Contains(src, []byte("\n-- error"))
		t.Run("tests/"+name, func(t *testing.T) {
			if reason, ok := outOfScope[name]; ok {
				t.Skipf("out of scope: %s", reason)
			}
			stage, why := conformance(t, p)
			if expectsError {
				errCases++
				if stage == stageLoad || stage == stageRun || stage == stageAssemble {
					refused++
					return
				}
				t.Errorf("%s: expects an error, but the interpreter did not refuse it (%s %s)", p, stage, why)
				return
			}
			run++
			if stage != "" {
				t.Errorf("%s: refused at %s: %s", p, stage, why)
				return
			}
			pass++
		})
	}
	for _, p := range negatives {
		name := strings.TrimSuffix(filepath.Base(p), ".data")
		t.Run("negative/"+name, func(t *testing.T) {
			errCases++
			stage, why := conformance(t, p)
			want := negativeStage(name)
			switch {
			case stage == "":
				t.Errorf("%s: a negative case passed; it must be refused at %s", p, want)
			case stage != want:
				t.Errorf("%s: refused at %s (%s), want at %s", p, stage, why, want)
			default:
				refused++
			}
		})
	}
	t.Logf("conformance: %d/%d programs pass, %d/%d error cases refused (%d out of scope)", pass, run+len(outOfScope), refused, errCases, len(outOfScope))
}
