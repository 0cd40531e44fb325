package vm_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/asmtext"
)

func asLoadError(err error, le **vm.LoadError) bool { return errors.As(err, le) }

func hex64(v uint64) string { return fmt.Sprintf("%#x", v) }

func hexWords(b []byte) string {
	var parts []string
	for i := 0; i+8 <= len(b); i += 8 {
		parts = append(parts, fmt.Sprintf("%x", b[i:i+8]))
	}
	return strings.Join(parts, " ")
}

func conformanceProgram(tb testing.TB, path string) asm.Instructions {
	tb.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := asmtext.ParseData(path, src)
	if err != nil {
		tb.Fatal(err)
	}
	insns, err := d.Program()
	if err != nil {
		tb.Fatal(err)
	}
	return insns
}
