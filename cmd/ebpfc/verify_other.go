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
