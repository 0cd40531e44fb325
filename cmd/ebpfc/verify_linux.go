//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/runtime"
)

func verifyKernel(out string, stdout, stderr io.Writer) int {
	dirs := []string{out}
	if _, err := os.Stat(filepath.Join(out, compiler.ManifestFile)); err != nil {
		var derr error
		dirs, derr = runtime.NodeDirs(out)
		if derr != nil {
			fmt.Fprintf(stderr, "ebpfc verify: %v\n", derr)
			return exitUsage
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "ebpfc verify --kernel: loading programs needs root; run it with sudo\n")
		return exitUsage
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Fprintf(stderr, "ebpfc verify: %v\n", err)
		return exitInternal
	}
	failed := false
	for _, dir := range dirs {
		a, err := runtime.ReadArtifacts(dir)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc verify: %v\n", err)
			failed = true
			continue
		}
		dp, err := runtime.Load(a)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc verify: node %s: rejected by the kernel: %v\n", a.Manifest.Node, err)
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "node %s: %d programs accepted by the kernel verifier\n", a.Manifest.Node, len(dp.Stats))
		for _, st := range dp.Stats {
			fmt.Fprintf(stdout, "  %-40s %5d insns  %6d processed\n", st.Name, st.Insns, st.Processed)
		}
		dp.Close()
	}
	if failed {
		return exitConfig
	}
	return exitOK
}

// kernelCounts loads one node's programs through the kernel's verifier and
// returns its processed-instruction count per program.
func kernelCounts(dir string) (map[string]int, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: loading programs needs root; run it with sudo", errKernelUnavailable)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: %v", errKernelUnavailable, err)
	}
	a, err := runtime.ReadArtifacts(dir)
	if err != nil {
		return nil, err
	}
	dp, err := runtime.Load(a)
	if err != nil {
		return nil, err
	}
	defer dp.Close()
	counts := make(map[string]int, len(dp.Stats))
	for _, st := range dp.Stats {
		counts[st.Name] = st.Processed
	}
	return counts, nil
}
