package asmtext

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
)

// TestRoundTrip assembles every program of the conformance suite,
// disassembles it and assembles the text again: the encodings must be
// identical, and disassembling again must give the same text.
func TestRoundTrip(t *testing.T) {
	paths, err := filepath.Glob("../testdata/bpf_conformance/tests/*.data")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no conformance tests: %v", err)
	}
	n := 0
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseData(p, src)
		if err != nil {
			t.Fatal(err)
		}
		if !d.HasAsm {
			continue
		}
		n++
		insns, err := Assemble(p, d.AsmLine, d.Asm)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		text, err := Disassemble(insns)
		if err != nil {
			t.Errorf("%s: disassemble: %v", p, err)
			continue
		}
		again, err := Assemble(p+" (disassembled)", 1, text)
		if err != nil {
			t.Errorf("%s: the disassembly does not assemble: %v\n%s", p, err, text)
			continue
		}
		a, errA := Encode(insns)
		b, errB := Encode(again)
		if errA != nil || errB != nil {
			t.Errorf("%s: encode: %v %v", p, errA, errB)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: round trip changed the encoding\nfirst:  %x\nsecond: %x\ntext:\n%s", p, a, b, text)
		}
		text2, err := Disassemble(again)
		if err != nil || text2 != text {
			t.Errorf("%s: disassembly is not a fixed point (%v):\n%s", p, cmp.Diff(text, text2), err)
		}
	}
	if n < 300 {
		t.Errorf("only %d programs with assembly; the suite has over 300", n)
	}
}

func TestDisassemble(t *testing.T) {
	src := `
	mov %r0, 0
	ldxh %r2, [%r1+12]
	jne32 %r2, 0x8, drop
	lock fetch add [%r10-8], %r1
	movsx1664 %r3, %r2
	lddw %r1, 0x1122334455667788
	lddw %r4, policy
	lddw %r5, .rodata+8
	call local fn
	call 1
	be16 %r2
	swap64 %r2
	stdw [%r10-16], -1
drop:
	exit
fn:
	ja32 drop
`
	insns, err := Assemble("t.s", 1, src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Disassemble(insns)
	if err != nil {
		t.Fatal(err)
	}
	want := `mov %r0, 0
ldxh %r2, [%r1+12]
jne32 %r2, 8, L16
lock fetch add [%r10-8], %r1
movsx1664 %r3, %r2
lddw %r1, 0x1122334455667788
lddw %r4, policy
lddw %r5, .rodata+8
call local L17
call 1
be16 %r2
swap64 %r2
stdw [%r10-16], -1
L16:
exit
L17:
ja32 L16
`
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("disassembly (-want +got):\n%s", d)
	}
	if insns[6].Reference() != "policy" || insns[6].Src != asm.PseudoMapFD {
		t.Errorf("lddw of a map: got %v", insns[6])
	}
	if insns[7].Reference() != ".rodata" || insns[7].Src != asm.PseudoMapValue || uint64(insns[7].Constant)>>32 != 8 {
		t.Errorf("lddw of a map value: got %v", insns[7])
	}
}

func TestAssembleErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"or %r0, %r50\nexit", "t.s:1:9: invalid register %r50 (%r0-%r10)"},
		{"ldxq %r0, %r1", "t.s:1:1: unknown mnemonic ldxq"},
		{"ldxb %r0, %r1", "t.s:1:11: want a memory operand [%rN+OFFSET]"},
		{"ldxb %r0, [%r1+0x10000]", "t.s:1:12: offset +0x10000 does not fit in 16 bits (-32768..32767)"},
		{"lddw %r0", "t.s:1:1: lddw takes 2 operands, got 1"},
		{"mov32 %r0, 2147483648", "t.s:1:12: immediate 2147483648 does not fit in 32 bits (decimal -2147483648..2147483647, hex up to 0xffffffff)"},
		{"mov32 %r0, 0x100000000", "t.s:1:12: immediate 0x100000000 does not fit in 32 bits (decimal -2147483648..2147483647, hex up to 0xffffffff)"},
		{"ja NOT_A_LABEL\nexit", "t.s:1:4: unknown label NOT_A_LABEL"},
		{"lock or [%r10-8]", "t.s:1:1: invalid number of operands for lock: want lock [fetch] OP [%rN+OFF], %rM"},
		{"lock", "t.s:1:1: invalid number of operands for lock: want lock [fetch] OP [%rN+OFF], %rM"},
		{"a:\na:\nexit", "t.s:2:1: label a is defined twice"},
		{"mov %r0, 1 $", `t.s:1:12: lexer: invalid input text "$\n"`},
		{"# nothing\n", "t.s:1: no instructions"},
		// Every problem is reported, in order.
		{"mov %r11, 1\nadd %r0, %r12", "t.s:1:5: invalid register %r11 (%r0-%r10)\nt.s:2:10: invalid register %r12 (%r0-%r10)"},
	} {
		_, err := Assemble("t.s", 1, tc.src)
		if err == nil {
			t.Errorf("%q: assembled", tc.src)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.src, got, tc.want)
		}
	}
}

// TestAssembleLine checks that a section assembled at a line of a larger
// file reports that file's lines.
func TestAssembleLine(t *testing.T) {
	_, err := Assemble("f.data", 7, "mov %r0, 0\nfrob %r0\n")
	if err == nil || !strings.HasPrefix(err.Error(), "f.data:8:1: ") {
		t.Errorf("got %v, want an error at f.data:8:1", err)
	}
}

func TestParseData(t *testing.T) {
	d, err := ParseData("x.data", []byte("# c\n-- asm\nmov %r0, 1\nexit\n-- mem\n01 02\nff\n-- raw\n0x00000001000000b7\n-- result\n0x1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasAsm || d.AsmLine != 3 || d.Asm != "mov %r0, 1\nexit" {
		t.Errorf("asm: %+v", d)
	}
	if !bytes.Equal(d.Mem, []byte{1, 2, 0xff}) || d.Result != 1 || !d.HasResult {
		t.Errorf("mem/result: %+v", d)
	}
	if !bytes.Equal(d.Raw, []byte{0xb7, 0, 0, 0, 1, 0, 0, 0}) {
		t.Errorf("raw: %x", d.Raw)
	}
	if _, err := ParseData("y.data", []byte("-- asm\nexit\n-- frob\n")); err == nil || err.Error() != `y.data:3:1: unknown section "frob" (asm, raw, mem, result, error, c, no register offset)` {
		t.Errorf("unknown section: %v", err)
	}
}
