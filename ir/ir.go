// Package ir is ebpfc's intermediate representation: typed, in basic blocks,
// free of both CUE and eBPF encoding details, with a source position on every
// operation.
//
// A Module holds everything compiled for one node: the node constants that
// specialise it, the maps its programs share, and the programs. A Program is a
// list of blocks; Blocks[0] is the entry. A Block is a list of Ops followed by
// exactly one terminator.
//
// Values are virtual registers. Each is defined by exactly one Op (the IR is in
// SSA form without phi nodes) and used only where its definition dominates the
// use. Code that needs a value chosen on two paths keeps the paths apart until
// they end.
//
// Safety facts the kernel's verifier needs are explicit in the control flow:
// a packet load must be dominated by the "ok" edge of a Bounds terminator on the
// same base pointer covering the access, and a map-value access must be
// dominated by the "ok" edge of an IfNull terminator on that value. Check
// enforces this, so the backend can emit code the verifier accepts without
// reasoning about it again.
package ir

import "github.com/ebpfc/ebpfc/source"

// Pos is a position in the configuration an op came from.
type Pos = source.Pos

// Value names a virtual register. NoValue means "none".
type Value int

// NoValue is the Value of an op that defines nothing.
const NoValue Value = -1

// Type is the type of a value, as the kernel verifier will see it.
type Type uint8

// The value types.
const (
	TypeInvalid    Type = iota
	Scalar              // a 64-bit integer
	Ctx                 // the program's context pointer
	PacketPtr           // a pointer into packet data
	PacketEnd           // the end of packet data
	MapValue            // a non-null pointer to a map value
	MapValueOrNull      // the result of a map lookup before its null check
)

// ProgType is the kind of program, which fixes its context and return codes.
type ProgType uint8

// The program types ebpfc emits.
const (
	ProgInvalid   ProgType = iota
	ProgXDP                // XDP, context xdp_md
	ProgSchedCLS           // tc classifier, context __sk_buff
	ProgSockAddr           // cgroup sock_addr, context bpf_sock_addr
	ProgSocketRaw          // reserved
)

// Kind is the operation an Op performs.
type Kind uint8

// The operations. Unless stated otherwise operands and results are Scalars.
const (
	OpInvalid Kind = iota

	// OpCtx defines the program's context (type Ctx). It must be the first op
	// of the entry block and appear only there.
	OpCtx
	// OpConst: Dst = Imm.
	OpConst
	// OpParam: Dst = the node constant named Sym. foldNodeConstants replaces it
	// with an OpConst from Module.Consts.
	OpParam
	// OpCtxLoad: Dst = the context field Sym of Args[0] (type Ctx). The field
	// fixes the result type: "data" gives PacketPtr, "data_end" PacketEnd,
	// everything else a Scalar. The fields a program type has are listed in
	// CtxFields.
	OpCtxLoad
	// OpCtxStore: stores Args[1] into the writable context field Sym of
	// Args[0] (type Ctx), e.g. "mark" or "cb0".
	OpCtxStore
	// OpLoad: Dst = the Size-byte unsigned integer at Args[0]+Off, where
	// Args[0] is a PacketPtr or a MapValue. Packet bytes keep network order.
	OpLoad
	// OpStore: stores the low Size bytes of Args[1] at Args[0]+Off, where
	// Args[0] is a MapValue.
	OpStore
	// OpAtomicAdd: atomically adds Args[1] to the Size-byte (4 or 8) integer
	// at Args[0]+Off, where Args[0] is a MapValue.
	OpAtomicAdd
	// OpMov: Dst = Args[0], with Args[0]'s type.
	OpMov
	// Binary arithmetic on 64-bit scalars: Dst = Args[0] op Args[1].
	OpAdd
	OpSub
	OpMul
	OpAnd
	OpOr
	OpXor
	OpShl
	OpShr  // logical shift right
	OpArsh // arithmetic shift right
	// OpSwap16, OpSwap32: Dst = Args[0] converted between network and host
	// byte order, keeping the low 16 or 32 bits.
	OpSwap16
	OpSwap32
	// OpPacketAdd: Dst (PacketPtr) = Args[0] (PacketPtr) + Args[1], where
	// Args[1] is a scalar the lowering has bounded to at most Imm. The result
	// needs its own Bounds check before it is read through.
	OpPacketAdd
	// OpMapLookup: Dst (MapValueOrNull) = lookup in map Sym with the key whose
	// fields, in the order of the map's key struct, are Args.
	OpMapLookup
	// OpMapUpdate: updates map Sym with key fields Args[:len(key fields)] and
	// value fields Args[len(key fields):], with flags Imm (0 any, 1 noexist,
	// 2 exist). Dst is the helper's return value.
	OpMapUpdate
	// OpMapDelete: deletes key Args from map Sym. Dst is the helper's return
	// value.
	OpMapDelete
	// OpKtimeNs: Dst = the monotonic clock in nanoseconds.
	OpKtimeNs
	// OpRingbufOutput: copies a record whose fields, in the order of the
	// ring buffer map Sym's value struct, are Args into the ring buffer.
	// Dst, when defined, is the helper's return value (0, or negative when
	// the buffer is full).
	OpRingbufOutput
)

// Operand is an op argument: a value, or an immediate constant.
type Operand struct {
	Value   Value
	Const   int64
	IsConst bool
}

// V makes a value operand.
func V(v Value) Operand { return Operand{Value: v} }

// C makes a constant operand.
func C(c int64) Operand { return Operand{Value: NoValue, Const: c, IsConst: true} }

// Op is one operation.
type Op struct {
	Kind Kind
	Dst  Value // NoValue when the op defines nothing
	Type Type  // the type of Dst
	Args []Operand
	Size int    // access size in bytes for loads, stores and atomics: 1, 2, 4 or 8
	Off  int16  // offset for loads, stores and atomics
	Imm  int64  // OpConst's value, OpPacketAdd's bound, OpMapUpdate's flags
	Sym  string // map name, context field or node constant name
	Pos  Pos
}

// TermKind is how a block ends.
type TermKind uint8

// The terminators.
const (
	TermInvalid TermKind = iota
	// TermJump: go to Then.
	TermJump
	// TermBranch: if A Cond B go to Then, else to Else. A and B are scalars.
	TermBranch
	// TermBounds: if A + Imm <= B go to Then ("ok"), else to Else. A is a
	// PacketPtr and B the PacketEnd.
	TermBounds
	// TermIfNull: if A is null go to Then, else to Else ("ok"). A is a
	// MapValueOrNull; in Else and the blocks it dominates A is a MapValue.
	TermIfNull
	// TermReturn: end the program returning Imm, or A when A != NoValue.
	TermReturn
	// TermTailCall: tail-call slot Imm of program array Sym with context A.
	// If the slot is empty the call falls through to Then. Target names the
	// program the compiler placed in that slot, for printing and checking.
	TermTailCall
)

// Cond is the comparison of a TermBranch.
type Cond uint8

// The comparisons. Lt, Le, Gt and Ge are unsigned; the S forms are signed.
const (
	CondInvalid Cond = iota
	Eq
	Ne
	Lt
	Le
	Gt
	Ge
	SLt
	SLe
	SGt
	SGe
	// Set: A & B != 0.
	Set
)

// Term ends a block.
type Term struct {
	Kind   TermKind
	Cond   Cond
	A      Value
	B      Operand
	Imm    int64
	Sym    string
	Target string
	Then   string // block label
	Else   string // block label
	Pos    Pos
}

// Block is a basic block.
type Block struct {
	Label string
	Ops   []*Op
	Term  Term
}

// Program is one eBPF program.
type Program struct {
	Name    string
	Type    ProgType
	Section string // ELF section, e.g. "tc" or "xdp"
	Blocks  []*Block
	Pos     Pos
}

// MapType is the kind of a map.
type MapType uint8

// The map types ebpfc uses.
const (
	MapInvalid MapType = iota
	MapHash
	MapLRUHash
	MapArray
	MapPerCPUArray
	MapPerCPUHash
	MapLPMTrie
	MapProgArray
	MapRingBuf // Value is the layout of its records; MaxEntries its size in bytes
)

// Field is an unsigned integer member of a map key or value. Size is 1, 2, 4
// or 8 bytes. Fields are laid out in order with natural alignment.
//
// BigEndian marks a field that holds its value in network byte order, such
// as an address or port copied from a packet. It changes nothing in the code
// (the bytes are copied as they are) but tells whoever fills the map from
// outside how to encode the value.
type Field struct {
	Name      string
	Size      int
	BigEndian bool
}

// Struct is the layout of a map key or value.
type Struct struct {
	Name   string // the BTF type name
	Fields []Field
}

// Map is a map shared by the programs of a module.
type Map struct {
	Name       string
	Type       MapType
	Key        Struct
	Value      Struct
	MaxEntries uint32
	Flags      uint32
	// Slots lists, for a program array, the program placed at each index,
	// "" for an empty slot. The ELF object initialises the array with them.
	Slots []string
	Pos   Pos
}

// Const is a node constant that specialises the module's programs.
type Const struct {
	Name  string
	Value int64
}

// Module is everything compiled for one node.
type Module struct {
	Name     string
	Consts   []Const // sorted by name
	Maps     []*Map  // sorted by name
	Programs []*Program
}
