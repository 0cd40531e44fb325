//go:build linux

package runtime

// Map sync: making a kernel map hold exactly the entries the configuration
// wants, with as few operations as possible. The kernel map is the truth: it
// is read back and diffed, so a sync also repairs entries changed behind
// ebpfd's back.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
)

// entrySet is a map's contents: value bytes by key bytes.
type entrySet map[string]string

// desiredEntries decodes the entries maps.json gives each map.
func desiredEntries(doc *compiler.MapsDoc) (map[string]entrySet, error) {
	out := make(map[string]entrySet, len(doc.Maps))
	for _, dm := range doc.Maps {
		set := make(entrySet, len(dm.Entries))
		for i, e := range dm.Entries {
			k, err := hex.DecodeString(e.KeyBytes)
			if err != nil {
				return nil, fmt.Errorf("maps.json: map %s entry %d key: %w", dm.Name, i, err)
			}
			v, err := hex.DecodeString(e.ValueBytes)
			if err != nil {
				return nil, fmt.Errorf("maps.json: map %s entry %d value: %w", dm.Name, i, err)
			}
			set[string(k)] = string(v)
		}
		out[dm.Name] = set
	}
	return out, nil
}

// readEntries reads every entry of a map.
func readEntries(m *ebpf.Map) (entrySet, error) {
	set := make(entrySet)
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		set[string(k)] = string(v)
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// mapDiff is what turns a map's current contents into the desired ones.
type mapDiff struct {
	add, update [][2]string // key, value
	del         []string
}

func diffEntries(cur, want entrySet) mapDiff {
	var d mapDiff
	for k, v := range want {
		old, ok := cur[k]
		switch {
		case !ok:
			d.add = append(d.add, [2]string{k, v})
		case old != v:
			d.update = append(d.update, [2]string{k, v})
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			d.del = append(d.del, k)
		}
	}
	return d
}

// mapWriter issues map operations, in batches where the kernel supports
// them for the map's type, and counts them.
type mapWriter struct {
	// noBatch records the map types whose batch operations failed as
	// unsupported, so later syncs go straight to single operations.
	noBatch map[ebpf.MapType]bool
}

// upsert writes kvs into m and returns the operations issued.
func (w *mapWriter) upsert(m *ebpf.Map, kvs [][2]string) (int, error) {
	if len(kvs) == 0 {
		return 0, nil
	}
	if len(kvs) > 1 && !w.noBatch[m.Type()] {
		keys := packed(int(m.KeySize()), len(kvs))
		vals := packed(int(m.ValueSize()), len(kvs))
		for i, kv := range kvs {
			reflect.Copy(keys.Index(i), reflect.ValueOf([]byte(kv[0])))
			reflect.Copy(vals.Index(i), reflect.ValueOf([]byte(kv[1])))
		}
		_, err := m.BatchUpdate(keys.Interface(), vals.Interface(), nil)
		if err == nil {
			return 1, nil
		}
		if !batchUnsupported(err) {
			return 1, fmt.Errorf("batch update of %d entries: %w", len(kvs), mapFull(m, err))
		}
		w.noBatch[m.Type()] = true
	}
	ops := 0
	for _, kv := range kvs {
		ops++
		if err := m.Update([]byte(kv[0]), []byte(kv[1]), ebpf.UpdateAny); err != nil {
			return ops, fmt.Errorf("update of key %x: %w", kv[0], mapFull(m, err))
		}
	}
	return ops, nil
}

// remove deletes keys from m and returns the operations issued.
func (w *mapWriter) remove(m *ebpf.Map, keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	if len(keys) > 1 && !w.noBatch[m.Type()] {
		ks := packed(int(m.KeySize()), len(keys))
		for i, k := range keys {
			reflect.Copy(ks.Index(i), reflect.ValueOf([]byte(k)))
		}
		_, err := m.BatchDelete(ks.Interface(), nil)
		if err == nil {
			return 1, nil
		}
		if !batchUnsupported(err) && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 1, fmt.Errorf("batch delete of %d entries: %w", len(keys), err)
		}
		if batchUnsupported(err) {
			w.noBatch[m.Type()] = true
		}
	}
	ops := 0
	for _, k := range keys {
		ops++
		if err := m.Delete([]byte(k)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return ops, fmt.Errorf("delete of key %x: %w", k, err)
		}
	}
	return ops, nil
}

// packed makes a []([size]byte) of n elements: a slice type whose elements
// have the map's key or value size, as the batch calls want.
func packed(size, n int) reflect.Value {
	return reflect.MakeSlice(reflect.SliceOf(reflect.ArrayOf(size, reflect.TypeFor[byte]())), n, n)
}

func batchUnsupported(err error) bool {
	return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.Errno(524)) // ENOTSUPP
}

func mapFull(m *ebpf.Map, err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) {
		return fmt.Errorf("map is full (%d entries at most; raise settings.mapSizes): %w", m.MaxEntries(), err)
	}
	return err
}
