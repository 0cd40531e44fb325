package main

import (
	"fmt"
	"io"
)

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", "ebpfc verify --kernel OUT",
		`Loads every program compiled into OUT (the -o directory of 'ebpfc compile', or
one node's directory in it) through the running kernel's verifier and prints
the verifier's processed-instruction count per program. Nothing is attached.
Needs root on Linux.`, stderr)
	kernel := fs.Bool("kernel", false, "verify with the running kernel's verifier")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc verify: want exactly one output directory, got %d arguments\n", len(pos))
		return exitUsage
	}
	if !*kernel {
		fmt.Fprintf(stderr, "ebpfc verify: only the kernel verifier is available in this version; pass --kernel\n")
		return exitUsage
	}
	return verifyKernel(pos[0], stdout, stderr)
}
