package vm

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// lpmTrie is an LPM trie map: keys are a host-order u32 prefix length
// followed by data, matched bit by bit from the first byte's most
// significant bit. A lookup finds the entry with the longest prefix that
// matches the key's data within the key's own prefix length, as the
// kernel's trie_lookup_elem does.
//
// Entries are kept per prefix length, keyed by their data with the bits
// beyond the prefix cleared, so a lookup probes each prefix length in use
// from the longest down. Each entry keeps the key it was written with, bits
// beyond the prefix included, which is what the kernel's iteration returns.
type lpmTrie struct {
	m       *Map
	bits    int                           // data bits
	byLen   map[int]map[string]*hashEntry // prefix length → masked data → entry
	lens    []int                         // prefix lengths in use, longest first
	count   int
	scratch []byte
}

func newLPM(m *Map) *lpmTrie {
	return &lpmTrie{m: m, bits: 8 * (int(m.keySize) - 4), byLen: map[int]map[string]*hashEntry{}, scratch: make([]byte, m.keySize-4)}
}

// mask copies data into dst keeping its first n bits.
func mask(dst, data []byte, n int) {
	copy(dst, data)
	full := n / 8
	if full < len(dst) {
		if rem := n % 8; rem != 0 {
			dst[full] &= byte(0xff << (8 - rem))
			full++
		}
		clear(dst[full:])
	}
}

func (t *lpmTrie) lookup(key []byte, cpu int) []byte {
	pl := int(binary.LittleEndian.Uint32(key))
	if pl > t.bits {
		pl = t.bits
	}
	data := key[4:]
	for _, n := range t.lens {
		if n > pl {
			continue
		}
		mask(t.scratch, data, n)
		if e := t.byLen[n][string(t.scratch)]; e != nil {
			return e.vals[0]
		}
	}
	return nil
}

func (t *lpmTrie) find(key []byte) (int, string, bool) {
	pl := int(binary.LittleEndian.Uint32(key))
	if pl > t.bits {
		return 0, "", false
	}
	d := make([]byte, len(key)-4)
	mask(d, key[4:], pl)
	return pl, string(d), true
}

func (t *lpmTrie) update(key []byte, values [][]byte, flags uint64, cpu int) error {
	if flags > UpdateExist {
		return EINVAL
	}
	pl, d, ok := t.find(key)
	if !ok {
		return EINVAL
	}
	e := t.byLen[pl][d]
	switch {
	case e != nil && flags == UpdateNoExist:
		return EEXIST
	case e == nil && flags == UpdateExist:
		return ENOENT
	case e == nil && t.count >= int(t.m.maxEntries):
		return ENOSPC
	}
	v := make([]byte, t.m.valueSize)
	copy(v, values[0])
	if e != nil {
		// The kernel replaces the node: the stored key is the new one, bits
		// beyond the prefix included.
		e.key, e.vals[0] = string(key), v
		return nil
	}
	if t.byLen[pl] == nil {
		t.byLen[pl] = map[string]*hashEntry{}
		t.lens = append(t.lens, pl)
		slices.SortFunc(t.lens, func(a, b int) int { return b - a })
	}
	t.byLen[pl][d] = &hashEntry{key: string(key), vals: [][]byte{v}}
	t.count++
	return nil
}

func (t *lpmTrie) delete(key []byte) error {
	pl, d, ok := t.find(key)
	if !ok {
		return EINVAL
	}
	if t.byLen[pl][d] == nil {
		return ENOENT
	}
	delete(t.byLen[pl], d)
	t.count--
	if len(t.byLen[pl]) == 0 {
		delete(t.byLen, pl)
		t.lens = slices.DeleteFunc(t.lens, func(n int) bool { return n == pl })
	}
	return nil
}

func (t *lpmTrie) entries() []Entry {
	var out []Entry
	for _, es := range t.byLen {
		for _, e := range es {
			out = append(out, Entry{Key: []byte(e.key), Values: [][]byte{slices.Clone(e.vals[0])}})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return bytes.Compare(a.Key, b.Key) })
	return out
}
