//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ebpfd: needs Linux (it loads and attaches BPF programs)")
	os.Exit(2)
}
