package ir

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckValid(t *testing.T) {
	if err := Check(sampleModule()); err != nil {
		t.Fatal(err)
	}
	if err := Check(mustParse(t, mergedBounds)); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, src string) *Module {
	t.Helper()
	m, err := Parse("test.ir", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mergedBounds proves 20 bytes on one path and 34 on the other, so after
// the merge 20 are proven: a load of [16, 20) is fine.
const mergedBounds = `module m

program p xdp section "xdp" @-
entry:
  v0:ctx = ctx                       @t.cue:1:1
  v1:pkt = ctx.load data v0          @t.cue:1:1
  v2:pkt_end = ctx.load data_end v0  @t.cue:1:1
  v3 = ctx.load rx_queue_index v0    @t.cue:1:1
  br v3 eq 0 -> short, long          @t.cue:2:1
short:
  bounds v1 + 20 <= v2 -> join, drop @t.cue:3:1
long:
  bounds v1 + 34 <= v2 -> join, drop @t.cue:4:1
join:
  v4 = load.u32 v1 + 16              @t.cue:5:1
  ret 2                              @t.cue:5:1
drop:
  ret 1                              @t.cue:6:1
`

func TestCheckInvalid(t *testing.T) {
	// Block indexes of the sample's first program.
	const (
		entry = iota
		eth
		ipv4
		hit
		count
		tail
		drop
		pass
	)
	for _, tc := range []struct {
		name   string
		mutate func(m *Module, b []*Block)
		want   string
		n      int // errors expected; 0 means 1
	}{
		{"missing terminator", func(m *Module, b []*Block) { b[drop].Term = Term{} }, "block drop: op 0 (<missing terminator>): missing or unknown terminator", 0},
		{"unknown target", func(m *Module, b []*Block) { b[eth].Term.Else = "nowhere" }, `block eth: op 2 (br v3 eq 8 -> ipv4, nowhere): no block called "nowhere"`, 0},
		{"duplicate label", func(m *Module, b []*Block) { b[pass].Label = "drop" }, "block drop: duplicate label", 3},
		{"entry without ctx first", func(m *Module, b []*Block) {
			b[entry].Ops = append([]*Op{{Kind: OpConst, Dst: 100, Type: Scalar}}, b[entry].Ops...)
		}, "the entry block does not start with ctx", 2},
		{"ctx outside the entry", func(m *Module, b []*Block) {
			b[drop].Ops = append(b[drop].Ops, &Op{Kind: OpCtx, Dst: 100, Type: Ctx})
		}, "block drop: op 0 (v100:ctx = ctx): ctx is defined only as the first op of the entry block", 0},
		{"value defined twice", func(m *Module, b []*Block) { b[hit].Ops[0].Dst = 5 }, "block hit: op 0 (v5 = load.u32 v9): v5 already defined in block ipv4", 3},
		{"use not dominated", func(m *Module, b []*Block) { b[eth].Term.A = 5 }, "v5 is used where its definition (block ipv4) does not dominate", 0},
		{"use before definition", func(m *Module, b []*Block) {
			ops := b[ipv4].Ops
			ops[0], ops[1] = ops[1], ops[0]
		}, "block ipv4: op 0 (v6 = swap32 v5): v5 is used where its definition (block ipv4) does not dominate", 0},
		{"undefined value", func(m *Module, b []*Block) { b[pass].Term.A = 99 }, "v99 is not defined", 0},
		{"wrong recorded type", func(m *Module, b []*Block) { b[ipv4].Ops[3].Type = PacketPtr }, "v8 is recorded as a pkt, but add gives a scalar", 0},
		{"value op without a value", func(m *Module, b []*Block) { b[eth].Ops[0].Dst = NoValue }, "op defines no value", 2},
		{"load through ctx", func(m *Module, b []*Block) { b[hit].Ops[0].Args[0] = V(0) }, "base v0 is a ctx, want a pkt or a map value", 0},
		{"bounds on a non-pointer", func(m *Module, b []*Block) { b[entry].Term.A = 0 }, "checked pointer v0 is a ctx, want a pkt", 3},
		{"bounds against a non-end", func(m *Module, b []*Block) { b[entry].Term.B = V(1) }, "end v1 is a pkt, want a pkt_end", 0},
		{"unknown ctx field", func(m *Module, b []*Block) { b[hit].Ops[2].Sym = "nope" }, `sched_cls programs have no context field "nope"`, 0},
		{"store to read-only ctx field", func(m *Module, b []*Block) { b[hit].Ops[2].Sym = "len" }, `context field "len" is read-only`, 0},
		{"bad access size", func(m *Module, b []*Block) { b[eth].Ops[0].Size = 3 }, "size 3, want 1, 2, 4 or 8", 0},
		{"misaligned atomic", func(m *Module, b []*Block) { b[count].Ops[0].Off = 4 }, "atomic at offset 4 is not aligned to 8", 0},
		{"unknown map", func(m *Module, b []*Block) { b[ipv4].Ops[4].Sym = "nope" }, `no map called "nope"`, 0},
		{"key operand count", func(m *Module, b []*Block) { b[ipv4].Ops[4].Args = b[ipv4].Ops[4].Args[:1] }, "map ipcache takes 2 operands, got 1", 0},
		{"update operand count", func(m *Module, b []*Block) { b[hit].Ops[4].Args = b[hit].Ops[4].Args[:2] }, "map counters takes 3 operands, got 2", 0},
		{"delete from array", func(m *Module, b []*Block) { b[hit].Ops[5].Sym, b[hit].Ops[5].Args = "counters", []Operand{C(1)} }, "delete from percpu_array map counters", 0},
		{"unknown param", func(m *Module, b []*Block) { b[eth].Ops[1].Sym = "nope" }, `no node constant called "nope"`, 0},
		{"packet load beyond bounds", func(m *Module, b []*Block) { b[entry].Term.Imm = 14 }, "packet load of bytes [26, 30) of v1, but only 14 bytes are proven on every path here", 0},
		{"packet load without bounds on one path", func(m *Module, b []*Block) { b[entry].Term.Else = "eth" }, "packet load through v1 with no bounds check on every path here", 2},
		{"store to packet", func(m *Module, b []*Block) { b[hit].Ops[1].Args[0] = V(1) }, "packet data is read-only in the IR", 0},
		{"map value maybe null", func(m *Module, b []*Block) { b[ipv4].Term.Then, b[ipv4].Term.Else = "hit", "drop" }, "v9 may be null here: no ifnull on every path", 2},
		{"map value access out of range", func(m *Module, b []*Block) { b[hit].Ops[0].Off = 4 }, "access to bytes [4, 8) of a 4-byte value of map ipcache", 0},
		{"tail call to the wrong target", func(m *Module, b []*Block) { b[tail].Term.Target = "other" }, `slot 2 of progs does not hold "other"`, 0},
		{"tail call slot out of range", func(m *Module, b []*Block) { b[tail].Term.Imm = 4 }, "slot 4 out of range for progs (max entries 4)", 0},
		{"tail call through a hash", func(m *Module, b []*Block) { b[tail].Term.Sym = "ipcache" }, "tail call through ipcache, a lpm_trie, want a prog_array", 0},
		{"bad return code", func(m *Module, b []*Block) { b[drop].Term.Imm = 9 }, "return code 9, want -1 to 8 for sched_cls", 0},
		{"cycle", func(m *Module, b []*Block) { b[drop].Term = Term{Kind: TermJump, A: NoValue, Then: "tail"} }, "control flow has a cycle", 0},
		{"consts unsorted", func(m *Module, b []*Block) { m.Consts = append(m.Consts, Const{Name: "a", Value: 1}) }, `consts not sorted by name or not unique: "a" after "ep.web.ingress.enforced"`, 0},
		{"maps unsorted", func(m *Module, b []*Block) { m.Maps[0], m.Maps[1] = m.Maps[1], m.Maps[0] }, `maps not sorted by name or not unique: "counters" after "events"`, 0},
		{"slot names no program", func(m *Module, b []*Block) { m.Maps[3].Slots[0] = "ghost" }, `map progs: slot 0 names "ghost", which is not a program of the module`, 0},
		{"output to a non-ring buffer", func(m *Module, b []*Block) { outputOp(b).Sym = "counters" }, "output to percpu_array map counters, want a ring buffer", 0},
		{"output field count", func(m *Module, b []*Block) { o := outputOp(b); o.Args = o.Args[:1] }, "ring buffer events takes 2 record fields, got 1", 0},
		{"field size", func(m *Module, b []*Block) { m.Maps[0].Value.Fields[1].Size = 3 }, "field counter.bytes has size 3", 0},
		{"duplicate program", func(m *Module, b []*Block) { m.Programs[1].Name = m.Programs[0].Name; m.Maps[3].Slots[2] = "" }, `duplicate program name "ep_web_ingress"`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sampleModule()
			tc.mutate(m, m.Programs[0].Blocks)
			err := Check(m)
			if err == nil {
				t.Fatalf("Check accepted:\n%s", m)
			}
			var errs CheckErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error is a %T, want CheckErrors", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got\n%v\nwant an error containing\n%s", err, tc.want)
			}
			if n := max(tc.n, 1); len(errs) != n {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), n, err)
			}
		})
	}
}

func TestCheckErrorNamesTheOp(t *testing.T) {
	m := sampleModule()
	m.Programs[0].Blocks[1].Ops[0].Size = 3
	err := Check(m)
	want := "policies.cue:12:5: ir: program ep_web_ingress: block eth: op 0 (v3 = load.u24 v1 + 12): size 3, want 1, 2, 4 or 8"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestCheckMergedBoundsMeet(t *testing.T) {
	m := mustParse(t, strings.Replace(mergedBounds, "load.u32 v1 + 16", "load.u32 v1 + 20", 1))
	err := Check(m)
	if err == nil || !strings.Contains(err.Error(), "only 20 bytes are proven") {
		t.Errorf("got %v, want the load past the shorter bound rejected", err)
	}
}

// outputOp finds the sample's ring buffer output.
func outputOp(blocks []*Block) *Op {
	for _, b := range blocks {
		for _, op := range b.Ops {
			if op.Kind == OpRingbufOutput {
				return op
			}
		}
	}
	panic("sample has no output op")
}
