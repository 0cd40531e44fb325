//go:build !linux

package main

import (
	"fmt"
	"io"
)

func verifyKernel(out string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ebpfc verify --kernel: needs Linux\n")
	return exitUsage
}

func kernelCounts(dir string) (map[string]int, error) {
	return nil, fmt.Errorf("%w: the kernel verifier needs Linux", errKernelUnavailable)
}
