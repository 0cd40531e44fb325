package backend

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/ir"
)

// TestListingGolden compares the listings of the test modules with
// testdata/listing_*.s; EBPFC_UPDATE=1 rewrites them.
func TestListingGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func() *ir.Module
	}{
		{"lpm", genLPMModule},
		{"spill", genSpillModule},
		{"tailcall", genTailCallModule},
		{"counter", genCounterModule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Listing(mustGenerate(t, tc.build()))
			path := filepath.Join("testdata", "listing_"+tc.name+".s")
			if os.Getenv("EBPFC_UPDATE") == "1" {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (EBPFC_UPDATE=1 writes it)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("%s differs (-want +got; EBPFC_UPDATE=1 rewrites it):\n%s", path, d)
			}
		})
	}
}

func TestFormatInsn(t *testing.T) {
	for _, tc := range []struct {
		ins  asm.Instruction
		want string
	}{
		{asm.Mov.Reg(asm.R6, asm.R1), "r6 = r1"},
		{asm.Add.Imm32(asm.R2, -3), "w2 += -3"},
		{asm.Xor.Imm(asm.R3, 0xff), "r3 ^= 0xff"},
		{asm.ArSh.Imm(asm.R3, 3), "r3 s>>= 3"},
		{asm.HostTo(asm.BE, asm.R4, asm.Word), "r4 = be32 r4"},
		{asm.LoadMem(asm.R2, asm.R7, 12, asm.Half), "r2 = *(u16 *)(r7 + 12)"},
		{asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord), "*(u64 *)(r10 - 8) = r1"},
		{storeImm(asm.RFP, -16, 0, asm.DWord), "*(u64 *)(r10 - 16) = 0"},
		{asm.AddAtomic.Mem(asm.R1, asm.R5, asm.Word, 4), "lock *(u32 *)(r1 + 4) += r5"},
		{asm.LoadImm(asm.R5, 1<<40, asm.DWord), "r5 = 0x10000000000 ll"},
		{asm.LoadMapPtr(asm.R1, 0).WithReference("ip_cache"), "r1 = map[ip_cache] ll"},
		{asm.JSGE.Reg(asm.R1, asm.R2, blockSymbolPrefix+"drop"), "if r1 s>= r2 goto drop"},
		{asm.JSet.Imm(asm.R1, 0x10, blockSymbolPrefix+"syn"), "if r1 & 0x10 goto syn"},
		{asm.Ja.Label(blockSymbolPrefix + "out"), "goto out"},
		{asm.FnMapUpdateElem.Call(), "call bpf_map_update_elem#2"},
		{asm.Return(), "exit"},
	} {
		if got := formatInsn(tc.ins); got != tc.want {
			t.Errorf("formatInsn(%v) = %q, want %q", tc.ins, got, tc.want)
		}
	}
}
