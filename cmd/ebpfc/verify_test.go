package main

import (
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/testenv"
)

func TestVerifyStatic(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := runCLI("compile", "../../examples/basic", "-o", out); code != exitOK {
		t.Fatalf("compile: exit %d: %s", code, stderr)
	}
	arts, err := compiler.CompileDir("../../examples/basic", compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{out, filepath.Join(out, "node-a")} {
		code, stdout, stderr := runCLI("verify", dir)
		if code != exitOK {
			t.Fatalf("verify %s: exit %d\n%s%s", dir, code, stdout, stderr)
		}
		if !strings.Contains(stdout, "node node-a: 12 programs, passed ebpfc's static verifier") {
			t.Errorf("verify %s: no summary for node-a:\n%s", dir, stdout)
		}
		// One line per program, with its length and an estimate.
		for _, p := range arts[0].Object.Programs {
			re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(p.Name) + ` +\d+ insns +\d+ processed \(estimated\)  OK$`)
			if !re.MatchString(stdout) {
				t.Errorf("verify %s: no line for %s:\n%s", dir, p.Name, stdout)
			}
		}
	}
}

// TestVerifyRejects writes a node whose object holds an unsafe program (a
// packet read moved past the bounds check) and expects exit 1 with the
// error at the instruction and its CUE position.
func TestVerifyRejects(t *testing.T) {
	arts, err := compiler.CompileDir("../../examples/basic", compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := arts[0].Object
	var prog *backend.Program
	for _, p := range obj.Programs {
		if strings.HasSuffix(p.Name, "_ipv4") {
			prog = p
			break
		}
	}
	if prog == nil {
		t.Fatal("no IPv4 program in examples/basic")
	}
	idx := -1
	for i, in := range prog.Insns {
		if in.OpCode.JumpOp() == asm.JGT && in.OpCode.Source() == asm.RegSource {
			for j := i + 1; j < len(prog.Insns); j++ {
				if prog.Insns[j].OpCode.Class() == asm.LdXClass && prog.Insns[j].Src != asm.R10 {
					idx = j
					break
				}
			}
			break
		}
	}
	if idx < 0 {
		t.Fatal("no packet load after a bounds check; the generated code changed shape")
	}
	prog.Insns = append(asm.Instructions(nil), prog.Insns...)
	prog.Insns[idx].Offset += 1000
	elf, err := backend.WriteELF(obj)
	if err != nil {
		t.Fatal(err)
	}
	arts[0].Files[compiler.ObjectFile] = elf
	out := t.TempDir()
	if err := compiler.WriteArtifacts(out, arts[:1]); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("verify", out)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitConfig, stdout, stderr)
	}
	if !strings.Contains(stdout, prog.Name) || !strings.Contains(stdout, "FAILED (1 error(s))") {
		t.Errorf("the table does not show %s failing:\n%s", prog.Name, stdout)
	}
	re := regexp.MustCompile(`^\.\./\.\./examples/basic/\w+\.cue:\d+:\d+: program ` + prog.Name + `, instruction \d+ \(.*\): packet read .* outside the checked range`)
	if !re.MatchString(strings.TrimSpace(stderr)) {
		t.Errorf("stderr does not name the CUE position, program and instruction:\n%s", stderr)
	}
}

func TestVerifyUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := runCLI("compile", "../../examples/basic", "-o", out); code != exitOK {
		t.Fatalf("compile: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"verify"},
		{"verify", out, out},
		{"verify", "--kernel", "--both", out},
		{"verify", t.TempDir()},
		{"verify", "--no-such-flag", out},
	} {
		if code, _, stderr := runCLI(args...); code != exitUsage || stderr == "" {
			t.Errorf("%v: exit %d (want %d), stderr %q", args, code, exitUsage, stderr)
		}
	}
	code, stdout, _ := runCLI("verify", "--help")
	if code != exitOK || !strings.Contains(stdout, "--both") || !strings.Contains(stdout, "Exit codes") {
		t.Errorf("verify --help: exit %d:\n%s", code, stdout)
	}
}

// TestVerifyBoth runs both verifiers and checks the side-by-side table.
func TestVerifyBoth(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel verifier needs Linux")
	}
	testenv.RequireKernel(t)
	out := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := runCLI("compile", "../../examples/basic", "--node", "node-a", "-o", out); code != exitOK {
		t.Fatalf("compile: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI("verify", "--both", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	row := regexp.MustCompile(`(?m)^  (\w+) +(\d+) +(\d+) +(\d+) +(\d+\.\d\d)  OK$`)
	rows := row.FindAllStringSubmatch(stdout, -1)
	if len(rows) != 12 {
		t.Fatalf("want 12 program rows with both counts, got %d:\n%s", len(rows), stdout)
	}
	for _, r := range rows {
		if r[4] == "0" {
			t.Errorf("%s: no kernel count", r[1])
		}
	}
}
