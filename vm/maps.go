package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// Update flags, as map_update_elem takes them.
const (
	UpdateAny     = 0 // BPF_ANY: create or replace
	UpdateNoExist = 1 // BPF_NOEXIST: create only
	UpdateExist   = 2 // BPF_EXIST: replace only
)

// Errno is a negative error code a helper returns, as the kernel's.
type Errno int

// The errors map helpers return.
const (
	ENOENT Errno = 2
	E2BIG  Errno = 7
	EAGAIN Errno = 11
	ENOMEM Errno = 12
	EFAULT Errno = 14
	EEXIST Errno = 17
	EINVAL Errno = 22
	ENOSPC Errno = 28
)

func (e Errno) Error() string {
	switch e {
	case ENOENT:
		return "no such entry (ENOENT)"
	case E2BIG:
		return "map is full or key out of range (E2BIG)"
	case EAGAIN:
		return "no space (EAGAIN)"
	case ENOMEM:
		return "out of memory (ENOMEM)"
	case EFAULT:
		return "bad address (EFAULT)"
	case EEXIST:
		return "entry exists (EEXIST)"
	case EINVAL:
		return "invalid argument (EINVAL)"
	case ENOSPC:
		return "map is full (ENOSPC)"
	}
	return fmt.Sprintf("errno %d", int(e))
}

// ret is the helper return value of an error: -errno as a 64-bit value.
func (e Errno) ret() uint64 { return uint64(-int64(e)) }

// Map is one map of a Machine, with the kernel's semantics for its type.
// Programs change it through helpers; callers read and change it through
// these methods, as user space does through the bpf syscall.
type Map struct {
	name       string
	typ        ebpf.MapType
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	flags      uint32
	ncpu       int
	impl       mapImpl
}

// Entry is one key and its value. Per-CPU maps have one value per CPU,
// other maps one value.
type Entry struct {
	Key    []byte
	Values [][]byte
}

// mapImpl is a map type's storage.
type mapImpl interface {
	// lookup returns the value of key for cpu (a slice into the storage) or
	// nil. A program's lookup counts as a use for LRU maps.
	lookup(key []byte, cpu int) []byte
	// update sets key's value for cpu from a program (per-CPU maps: only
	// that CPU's slot of a new entry is set, the others are zero), or for
	// every CPU when cpu < 0 (user space, values has one value per CPU).
	update(key []byte, values [][]byte, flags uint64, cpu int) error
	delete(key []byte) error
	// entries lists the contents sorted by key.
	entries() []Entry
}

const (
	flagNoPrealloc = 1 << 0
	flagRdonlyProg = 1 << 7
	flagWronlyProg = 1 << 8
)

func newMap(spec *ebpf.MapSpec, ncpu int) (*Map, error) {
	m := &Map{
		name: spec.Name, typ: spec.Type, keySize: spec.KeySize, valueSize: spec.ValueSize,
		maxEntries: spec.MaxEntries, flags: spec.Flags, ncpu: 1,
	}
	if m.perCPU(spec.Type) {
		m.ncpu = ncpu
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("map %s (%s): %s", spec.Name, spec.Type, fmt.Sprintf(format, args...))
	}
	if spec.MaxEntries == 0 {
		return nil, bad("max entries must be positive")
	}
	switch spec.Type {
	case ebpf.Array, ebpf.PerCPUArray:
		if spec.KeySize != 4 {
			return nil, bad("key size %d, arrays have 4-byte keys", spec.KeySize)
		}
		if spec.ValueSize == 0 {
			return nil, bad("value size must be positive")
		}
		m.impl = newArray(m)
	case ebpf.Hash, ebpf.PerCPUHash, ebpf.LRUHash, ebpf.LRUCPUHash:
		if spec.KeySize == 0 || spec.ValueSize == 0 {
			return nil, bad("key and value sizes must be positive")
		}
		m.impl = newHash(m, spec.Type == ebpf.LRUHash || spec.Type == ebpf.LRUCPUHash)
	case ebpf.LPMTrie:
		if spec.KeySize <= 4 || spec.KeySize > 4+256 {
			return nil, bad("key size %d, LPM trie keys are a 4-byte prefix length and 1 to 256 bytes of data", spec.KeySize)
		}
		if spec.Flags&flagNoPrealloc == 0 {
			return nil, bad("LPM tries need the BPF_F_NO_PREALLOC flag, as in the kernel")
		}
		m.impl = newLPM(m)
	case ebpf.ProgramArray:
		if spec.KeySize != 4 || spec.ValueSize != 4 {
			return nil, bad("program arrays have 4-byte keys and values")
		}
		m.impl = &progArray{m: m, slots: make([]string, spec.MaxEntries)}
	case ebpf.RingBuf:
		if spec.KeySize != 0 || spec.ValueSize != 0 {
			return nil, bad("ring buffers have no key or value size")
		}
		if spec.MaxEntries&(spec.MaxEntries-1) != 0 || spec.MaxEntries < 4096 {
			return nil, bad("size %d must be a power of 2 and at least one page", spec.MaxEntries)
		}
		m.impl = &ringbuf{m: m}
	default:
		return nil, bad("the interpreter does not support this map type")
	}
	return m, nil
}

func (m *Map) perCPU(t ebpf.MapType) bool {
	return t == ebpf.PerCPUArray || t == ebpf.PerCPUHash || t == ebpf.LRUCPUHash
}

// Name is the map's name.
func (m *Map) Name() string { return m.name }

// Type is the map's type.
func (m *Map) Type() ebpf.MapType { return m.typ }

// KeySize and ValueSize are the sizes the map was declared with.
func (m *Map) KeySize() int { return int(m.keySize) }

// ValueSize is the size of one value (of one CPU's value for per-CPU maps).
func (m *Map) ValueSize() int { return int(m.valueSize) }

// PerCPU reports whether the map holds one value per CPU.
func (m *Map) PerCPU() bool { return m.ncpu > 1 || m.perCPU(m.typ) }

func (m *Map) writable() bool { return m.flags&flagRdonlyProg == 0 }

func (m *Map) checkKey(key []byte) error {
	if len(key) != int(m.keySize) {
		return fmt.Errorf("map %s: key of %d bytes, want %d", m.name, len(key), m.keySize)
	}
	return nil
}

// Lookup returns the value of key (for per-CPU maps, the values of every
// CPU concatenated), or ENOENT.
func (m *Map) Lookup(key []byte) ([]byte, error) {
	vals, err := m.LookupPerCPU(key)
	if err != nil {
		return nil, err
	}
	return bytes.Join(vals, nil), nil
}

// LookupPerCPU returns key's value per CPU (one value for other maps).
func (m *Map) LookupPerCPU(key []byte) ([][]byte, error) {
	if err := m.checkKey(key); err != nil {
		return nil, err
	}
	for _, e := range m.impl.entries() {
		if bytes.Equal(e.Key, key) {
			return e.Values, nil
		}
	}
	return nil, ENOENT
}

// Update sets key's value as user space does. For per-CPU maps, value is
// either one value (copied to every CPU) or every CPU's value concatenated.
// For program arrays, value is a program name (or empty to clear the slot).
func (m *Map) Update(key, value []byte, flags uint64) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	if pa, ok := m.impl.(*progArray); ok {
		return pa.set(key, string(value))
	}
	var vals [][]byte
	switch {
	case len(value) == int(m.valueSize):
		for range m.ncpu {
			vals = append(vals, slices.Clone(value))
		}
	case m.ncpu > 1 && len(value) == int(m.valueSize)*m.ncpu:
		for c := range m.ncpu {
			vals = append(vals, slices.Clone(value[c*int(m.valueSize):(c+1)*int(m.valueSize)]))
		}
	default:
		return fmt.Errorf("map %s: value of %d bytes, want %d", m.name, len(value), m.valueSize)
	}
	return m.impl.update(key, vals, flags, -1)
}

// Delete removes key.
func (m *Map) Delete(key []byte) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	return m.impl.delete(key)
}

// Entries lists the map's contents sorted by key: for arrays every index,
// for ring buffers the records not yet read (keyed by sequence number).
func (m *Map) Entries() []Entry { return m.impl.entries() }

// Records returns the ring buffer's records that have not been read yet
// and marks them read, freeing their space. Other maps have none.
func (m *Map) Records() [][]byte {
	rb, ok := m.impl.(*ringbuf)
	if !ok {
		return nil
	}
	return rb.drain()
}

// --- arrays ---

type arrayMap struct {
	m    *Map
	vals []byte // index-major, then CPU
}

func newArray(m *Map) *arrayMap {
	return &arrayMap{m: m, vals: make([]byte, int(m.maxEntries)*m.ncpu*int(m.valueSize))}
}

func (a *arrayMap) slot(i uint32, cpu int) []byte {
	vs := int(a.m.valueSize)
	o := (int(i)*a.m.ncpu + cpu) * vs
	return a.vals[o : o+vs : o+vs]
}

func (a *arrayMap) index(key []byte) (uint32, bool) {
	i := binary.LittleEndian.Uint32(key)
	return i, i < a.m.maxEntries
}

func (a *arrayMap) lookup(key []byte, cpu int) []byte {
	i, ok := a.index(key)
	if !ok {
		return nil
	}
	return a.slot(i, cpu%a.m.ncpu)
}

func (a *arrayMap) update(key []byte, values [][]byte, flags uint64, cpu int) error {
	if flags > UpdateExist {
		return EINVAL
	}
	i, ok := a.index(key)
	if !ok {
		return E2BIG
	}
	if flags == UpdateNoExist {
		return EEXIST
	}
	if cpu >= 0 {
		copy(a.slot(i, cpu%a.m.ncpu), values[0])
		return nil
	}
	for c := range a.m.ncpu {
		copy(a.slot(i, c), values[c])
	}
	return nil
}

func (a *arrayMap) delete(key []byte) error { return EINVAL }

func (a *arrayMap) entries() []Entry {
	out := make([]Entry, a.m.maxEntries)
	for i := range a.m.maxEntries {
		e := Entry{Key: binary.LittleEndian.AppendUint32(nil, i)}
		for c := range a.m.ncpu {
			e.Values = append(e.Values, slices.Clone(a.slot(i, c)))
		}
		out[i] = e
	}
	return out
}

// --- hash maps (plain, per-CPU, LRU) ---

type hashEntry struct {
	key        string
	vals       [][]byte
	prev, next *hashEntry // LRU order, most recent at head
}

type hashMap struct {
	m     *Map
	lru   bool
	elems map[string]*hashEntry
	head  *hashEntry
	tail  *hashEntry
}

func newHash(m *Map, lru bool) *hashMap {
	return &hashMap{m: m, lru: lru, elems: map[string]*hashEntry{}}
}

func (h *hashMap) unlink(e *hashEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		h.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		h.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (h *hashMap) pushFront(e *hashEntry) {
	e.next = h.head
	if h.head != nil {
		h.head.prev = e
	}
	h.head = e
	if h.tail == nil {
		h.tail = e
	}
}

func (h *hashMap) touch(e *hashEntry) {
	if h.lru && h.head != e {
		h.unlink(e)
		h.pushFront(e)
	}
}

func (h *hashMap) lookup(key []byte, cpu int) []byte {
	e := h.elems[string(key)]
	if e == nil {
		return nil
	}
	h.touch(e)
	return e.vals[cpu%h.m.ncpu]
}

func (h *hashMap) update(key []byte, values [][]byte, flags uint64, cpu int) error {
	if flags > UpdateExist {
		return EINVAL
	}
	e := h.elems[string(key)]
	switch {
	case e != nil && flags == UpdateNoExist:
		return EEXIST
	case e == nil && flags == UpdateExist:
		return ENOENT
	}
	if e == nil {
		if len(h.elems) >= int(h.m.maxEntries) {
			if !h.lru {
				return E2BIG
			}
			// Evict the least recently used entry.
			old := h.tail
			h.unlink(old)
			delete(h.elems, old.key)
		}
		e = &hashEntry{key: string(key), vals: make([][]byte, h.m.ncpu)}
		for c := range e.vals {
			e.vals[c] = make([]byte, h.m.valueSize)
		}
		h.elems[e.key] = e
		h.pushFront(e)
	} else {
		h.touch(e)
	}
	if cpu >= 0 {
		// A program's update replaces the value with a fresh copy, as the
		// kernel allocates a new element: pointers from earlier lookups keep
		// the old value.
		v := make([]byte, h.m.valueSize)
		copy(v, values[0])
		e.vals[cpu%h.m.ncpu] = v
		return nil
	}
	for c := range e.vals {
		v := make([]byte, h.m.valueSize)
		copy(v, values[c])
		e.vals[c] = v
	}
	return nil
}

func (h *hashMap) delete(key []byte) error {
	e := h.elems[string(key)]
	if e == nil {
		return ENOENT
	}
	h.unlink(e)
	delete(h.elems, e.key)
	return nil
}

func (h *hashMap) entries() []Entry {
	out := make([]Entry, 0, len(h.elems))
	for _, e := range h.elems {
		ent := Entry{Key: []byte(e.key)}
		for _, v := range e.vals {
			ent.Values = append(ent.Values, slices.Clone(v))
		}
		out = append(out, ent)
	}
	slices.SortFunc(out, func(a, b Entry) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

// --- program arrays ---

type progArray struct {
	m     *Map
	slots []string // program names, "" for empty
}

func (p *progArray) lookup(key []byte, cpu int) []byte { return nil }

func (p *progArray) update(key []byte, values [][]byte, flags uint64, cpu int) error {
	return EINVAL // programs cannot update program arrays
}

func (p *progArray) set(key []byte, prog string) error {
	i := binary.LittleEndian.Uint32(key)
	if i >= uint32(len(p.slots)) {
		return E2BIG
	}
	p.slots[i] = prog
	return nil
}

func (p *progArray) delete(key []byte) error {
	i := binary.LittleEndian.Uint32(key)
	if i >= uint32(len(p.slots)) || p.slots[i] == "" {
		return ENOENT
	}
	p.slots[i] = ""
	return nil
}

func (p *progArray) entries() []Entry {
	var out []Entry
	for i, s := range p.slots {
		if s != "" {
			out = append(out, Entry{Key: binary.LittleEndian.AppendUint32(nil, uint32(i)), Values: [][]byte{[]byte(s)}})
		}
	}
	return out
}

// --- ring buffers ---

type ringRec struct {
	data      []byte
	submitted bool
	discarded bool
}

// ringbuf keeps records in order. Each record takes an 8-byte header and
// its data rounded up to 8 bytes of the buffer's size, as in the kernel;
// reserved records hold their space until they are submitted or discarded
// and read.
type ringbuf struct {
	m    *Map
	recs []*ringRec
	used int
	seq  uint64 // sequence number of recs[0]
}

func recSize(n int) int { return 8 + (n+7)&^7 }

func (rb *ringbuf) reserve(n int) *ringRec {
	if n <= 0 || rb.used+recSize(n) > int(rb.m.maxEntries) {
		return nil
	}
	rec := &ringRec{data: make([]byte, n)}
	rb.recs = append(rb.recs, rec)
	rb.used += recSize(n)
	return rec
}

func (rb *ringbuf) drain() [][]byte {
	var out [][]byte
	for len(rb.recs) > 0 && (rb.recs[0].submitted || rb.recs[0].discarded) {
		r := rb.recs[0]
		if r.submitted {
			out = append(out, r.data)
		}
		rb.used -= recSize(len(r.data))
		rb.recs = rb.recs[1:]
		rb.seq++
	}
	return out
}

func (rb *ringbuf) lookup(key []byte, cpu int) []byte { return nil }
func (rb *ringbuf) update(key []byte, values [][]byte, flags uint64, cpu int) error {
	return EINVAL
}
func (rb *ringbuf) delete(key []byte) error { return EINVAL }

func (rb *ringbuf) entries() []Entry {
	var out []Entry
	for i, r := range rb.recs {
		if r.submitted {
			out = append(out, Entry{Key: binary.LittleEndian.AppendUint64(nil, rb.seq+uint64(i)), Values: [][]byte{slices.Clone(r.data)}})
		}
	}
	return out
}

// --- snapshots ---

// Snapshot is the contents of every map at one moment, by map name.
type Snapshot map[string][]Entry

// Snapshot copies the contents of every map.
func (mc *Machine) Snapshot() Snapshot {
	s := Snapshot{}
	for _, m := range mc.maps {
		s[m.name] = m.Entries()
	}
	return s
}

// Change is one entry that differs between two snapshots. Before or After
// is nil where the entry is absent.
type Change struct {
	Map    string
	Key    []byte
	Before [][]byte
	After  [][]byte
}

func (c Change) String() string {
	hexes := func(vs [][]byte) string {
		if vs == nil {
			return "absent"
		}
		var parts []string
		for _, v := range vs {
			parts = append(parts, fmt.Sprintf("%x", v))
		}
		return strings.Join(parts, "|")
	}
	return fmt.Sprintf("%s[%x]: %s -> %s", c.Map, c.Key, hexes(c.Before), hexes(c.After))
}

// Diff lists the entries that differ from before to after, by map name and
// key.
func Diff(before, after Snapshot) []Change {
	var names []string
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []Change
	for _, n := range names {
		b := map[string][][]byte{}
		for _, e := range before[n] {
			b[string(e.Key)] = e.Values
		}
		a := map[string][][]byte{}
		for _, e := range after[n] {
			a[string(e.Key)] = e.Values
		}
		var keys []string
		for k := range b {
			keys = append(keys, k)
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			bv, av := b[k], a[k]
			if !equalValues(bv, av) {
				out = append(out, Change{Map: n, Key: []byte(k), Before: bv, After: av})
			}
		}
	}
	return out
}

func equalValues(a, b [][]byte) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
