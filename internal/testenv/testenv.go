// Package testenv gates tests that need a kernel which loads and runs BPF
// programs. Where the kernel cannot be had the test skips with the reason;
// with EBPFC_REQUIRE_KERNEL=1 (which CI sets) that skip is a failure instead.
package testenv

import (
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
)

var (
	probeOnce sync.Once
	probeErr  error
)

func probe() error {
	probeOnce.Do(func() {
		if os.Geteuid() != 0 {
			probeErr = errNotRoot
			return
		}
		if err := rlimit.RemoveMemlock(); err != nil {
			probeErr = err
			return
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:    ebpf.SchedCLS,
			License: "MIT",
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			},
		})
		if err != nil {
			probeErr = err
			return
		}
		prog.Close()
	})
	return probeErr
}

type notRootError struct{}

func (notRootError) Error() string { return "not running as root" }

var errNotRoot error = notRootError{}

// Required reports whether EBPFC_REQUIRE_KERNEL=1 is set.
func Required() bool { return os.Getenv("EBPFC_REQUIRE_KERNEL") == "1" }

// RequireKernel skips t unless BPF programs can be loaded and run here. With
// EBPFC_REQUIRE_KERNEL=1 it fails t instead of skipping.
func RequireKernel(tb testing.TB) {
	tb.Helper()
	if err := probe(); err != nil {
		if Required() {
			tb.Fatalf("kernel BPF support required (EBPFC_REQUIRE_KERNEL=1) but unavailable: %v", err)
		}
		tb.Skipf("skipping: needs root and a kernel that loads BPF programs: %v", err)
	}
}

// RequireTool skips t unless the named command is on PATH; with
// EBPFC_REQUIRE_KERNEL=1 it fails instead, since CI installs every tool the
// tests use.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := lookPath(name)
	if err != nil {
		if Required() {
			tb.Fatalf("%s required (EBPFC_REQUIRE_KERNEL=1) but not found; make test installs it as root: %v", name, err)
		}
		tb.Skipf("skipping: %s not found: %v", name, err)
	}
	return path
}
