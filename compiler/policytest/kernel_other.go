//go:build !linux

package policytest

import (
	"errors"

	"github.com/ebpfc/ebpfc/compiler"
)

var errNotLinux = errors.New("BPF_PROG_TEST_RUN needs Linux")

func kernelUsable() error { return errNotLinux }

func loadKernel(a *compiler.Artifacts) (datapath, error) { return nil, errNotLinux }
