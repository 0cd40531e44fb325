package verifier

import "math/bits"

// tnum is a "tristate number", the kernel's known-bits domain: a bit whose
// mask bit is 0 has the value of the corresponding bit of value; a bit whose
// mask bit is 1 is unknown. value&mask is always 0.
type tnum struct{ value, mask uint64 }

var tnumUnknown = tnum{0, ^uint64(0)}

func tnumConst(v uint64) tnum { return tnum{v, 0} }

// tnumRange is the smallest tnum that holds every value of [min, max].
func tnumRange(min, max uint64) tnum {
	chi := min ^ max
	n := bits.Len64(chi)
	if n > 63 {
		return tnumUnknown
	}
	delta := uint64(1)<<n - 1
	return tnum{min &^ delta, delta}
}

func (a tnum) isConst() bool { return a.mask == 0 }

func (a tnum) add(b tnum) tnum {
	sm := a.mask + b.mask
	sv := a.value + b.value
	sigma := sm + sv
	chi := sigma ^ sv
	mu := chi | a.mask | b.mask
	return tnum{sv &^ mu, mu}
}

func (a tnum) sub(b tnum) tnum {
	dv := a.value - b.value
	alpha := dv + a.mask
	beta := dv - b.mask
	chi := alpha ^ beta
	mu := chi | a.mask | b.mask
	return tnum{dv &^ mu, mu}
}

func (a tnum) and(b tnum) tnum {
	alpha := a.value | a.mask
	beta := b.value | b.mask
	v := a.value & b.value
	return tnum{v, alpha & beta &^ v}
}

func (a tnum) or(b tnum) tnum {
	v := a.value | b.value
	mu := a.mask | b.mask
	return tnum{v, mu &^ v}
}

func (a tnum) xor(b tnum) tnum {
	v := a.value ^ b.value
	mu := a.mask | b.mask
	return tnum{v &^ mu, mu}
}

func (a tnum) lsh(s uint) tnum { return tnum{a.value << s, a.mask << s} }
func (a tnum) rsh(s uint) tnum { return tnum{a.value >> s, a.mask >> s} }

// arsh shifts right arithmetically as a width-bit number (32 or 64).
func (a tnum) arsh(s uint, width int) tnum {
	if width == 32 {
		return tnum{uint64(uint32(int32(uint32(a.value)) >> s)), uint64(uint32(int32(uint32(a.mask)) >> s))}
	}
	return tnum{uint64(int64(a.value) >> s), uint64(int64(a.mask) >> s)}
}

// mul is the kernel's tnum_mul.
func (a tnum) mul(b tnum) tnum {
	accV := a.value * b.value
	accM := tnum{}
	for a.value != 0 || a.mask != 0 {
		if a.value&1 != 0 {
			accM = accM.add(tnum{0, b.mask})
		} else if a.mask&1 != 0 {
			accM = accM.add(tnum{0, b.value | b.mask})
		}
		a = a.rsh(1)
		b = b.lsh(1)
	}
	return tnumConst(accV).add(accM)
}

// intersect combines two sets of knowledge about the same value.
func (a tnum) intersect(b tnum) tnum {
	v := a.value | b.value
	mu := a.mask & b.mask
	return tnum{v &^ mu, mu}
}

// cast truncates a to size bytes.
func (a tnum) cast(size int) tnum {
	if size >= 8 {
		return a
	}
	m := uint64(1)<<(8*uint(size)) - 1
	return tnum{a.value & m, a.mask & m}
}

// contains reports whether every value b can hold, a can hold too.
func (a tnum) contains(b tnum) bool {
	if b.mask&^a.mask != 0 {
		return false
	}
	return a.value == b.value&^a.mask
}

func (a tnum) subreg() tnum { return a.cast(4) }

// withSubreg replaces the low 32 bits of a by sub.
func (a tnum) withSubreg(sub tnum) tnum {
	hi := tnum{a.value &^ 0xffffffff, a.mask &^ 0xffffffff}
	return hi.or(sub.cast(4))
}
