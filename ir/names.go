package ir

import "fmt"

// The names below are the IR's text form (see Print and Parse) and what the
// String methods return, so a message, a dump and a golden file agree.

var typeNames = [...]string{
	TypeInvalid:    "invalid",
	Scalar:         "scalar",
	Ctx:            "ctx",
	PacketPtr:      "pkt",
	PacketEnd:      "pkt_end",
	MapValue:       "map_value",
	MapValueOrNull: "map_value_or_null",
}

var progTypeNames = [...]string{
	ProgInvalid:   "invalid",
	ProgXDP:       "xdp",
	ProgSchedCLS:  "sched_cls",
	ProgSockAddr:  "sock_addr",
	ProgSocketRaw: "socket_raw",
}

// kindNames are the mnemonics of the ops. Loads, stores and atomics print
// with a size suffix (load.u16).
var kindNames = [...]string{
	OpInvalid:       "invalid",
	OpCtx:           "ctx",
	OpConst:         "const",
	OpParam:         "param",
	OpCtxLoad:       "ctx.load",
	OpCtxStore:      "ctx.store",
	OpLoad:          "load",
	OpStore:         "store",
	OpAtomicAdd:     "atomic.add",
	OpMov:           "mov",
	OpAdd:           "add",
	OpSub:           "sub",
	OpMul:           "mul",
	OpAnd:           "and",
	OpOr:            "or",
	OpXor:           "xor",
	OpShl:           "shl",
	OpShr:           "shr",
	OpArsh:          "arsh",
	OpSwap16:        "swap16",
	OpSwap32:        "swap32",
	OpPacketAdd:     "packet.add",
	OpMapLookup:     "lookup",
	OpMapUpdate:     "update",
	OpMapDelete:     "delete",
	OpKtimeNs:       "ktime_ns",
	OpRingbufOutput: "output",
}

var termNames = [...]string{
	TermInvalid:  "invalid",
	TermJump:     "jump",
	TermBranch:   "br",
	TermBounds:   "bounds",
	TermIfNull:   "ifnull",
	TermReturn:   "ret",
	TermTailCall: "tailcall",
}

var condNames = [...]string{
	CondInvalid: "invalid",
	Eq:          "eq",
	Ne:          "ne",
	Lt:          "lt",
	Le:          "le",
	Gt:          "gt",
	Ge:          "ge",
	SLt:         "slt",
	SLe:         "sle",
	SGt:         "sgt",
	SGe:         "sge",
	Set:         "set",
}

var mapTypeNames = [...]string{
	MapInvalid:     "invalid",
	MapHash:        "hash",
	MapLRUHash:     "lru_hash",
	MapArray:       "array",
	MapPerCPUArray: "percpu_array",
	MapPerCPUHash:  "percpu_hash",
	MapLPMTrie:     "lpm_trie",
	MapProgArray:   "prog_array",
	MapRingBuf:     "ringbuf",
}

// enumName returns names[i], or a form that names the type and number when i
// is out of range; the latter does not parse back, and Check rejects it.
func enumName[T ~uint8](names []string, what string, i T) string {
	if int(i) < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", what, i)
}

// enumByName is the inverse of the names table.
func enumByName[T ~uint8](names []string, s string) (T, bool) {
	for i, n := range names {
		if n == s {
			return T(i), true
		}
	}
	return 0, false
}

// String returns t's name in the text form ("pkt", "map_value_or_null", …).
func (t Type) String() string { return enumName(typeNames[:], "type", t) }

// String returns t's name in the text form ("xdp", "sched_cls", …).
func (t ProgType) String() string { return enumName(progTypeNames[:], "progtype", t) }

// String returns k's mnemonic in the text form, without a size suffix.
func (k Kind) String() string { return enumName(kindNames[:], "op", k) }

// String returns k's keyword in the text form ("br", "bounds", …).
func (k TermKind) String() string { return enumName(termNames[:], "term", k) }

// String returns c's name in the text form ("eq", "slt", "set", …).
func (c Cond) String() string { return enumName(condNames[:], "cond", c) }

// String returns t's name in the text form ("lpm_trie", "prog_array", …).
func (t MapType) String() string { return enumName(mapTypeNames[:], "maptype", t) }

// String formats v as it appears in the text form: v3, or "none".
func (v Value) String() string {
	if v == NoValue {
		return "none"
	}
	return fmt.Sprintf("v%d", int(v))
}

// String formats o as it appears in the text form: v3 or 42.
func (o Operand) String() string {
	if o.IsConst {
		return fmt.Sprint(o.Const)
	}
	return o.Value.String()
}

// IsBinary reports whether k is one of the two-operand arithmetic ops.
func (k Kind) IsBinary() bool { return k >= OpAdd && k <= OpArsh }

// isBareName reports whether s prints as a bare name rather than a quoted
// string: it matches [A-Za-z_][A-Za-z0-9_.-]*, does not read as a value
// (v3…) and is not a keyword of the grammar. It is written out by hand
// because the printer asks it for every name it prints.
func isBareName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	if len(s) >= 2 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9' {
		return false
	}
	return !keywords[s]
}
