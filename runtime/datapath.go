//go:build linux

package runtime

// Reconciling the kernel with a node's artifacts. One apply:
//
//  1. plans: a map is kept (reused with its contents) when its layout is
//     unchanged, and a program array only when its slots are unchanged too;
//     other maps are created anew. A program is kept when its code hash is
//     unchanged, it uses no new map and every place it runs (attachments,
//     tail-call slot) runs it now; every other program is loaded.
//  2. creates the new maps and loads the new programs (loadset.go), with
//     their references to kept maps resolved to the running maps. A
//     verifier error stops the apply here: nothing has changed.
//  3. reads the kept maps the configuration owns and diffs them against the
//     desired contents; checks that the new entries fit.
//  4. fills the new maps (no running program sees them yet) and pins them
//     over the old pins (running programs keep their references).
//  5. writes the additions and changes into kept maps,
//  6. swaps changed programs into kept program arrays, replaces programs at
//     their attachments (link update: atomic per hook) and attaches new ones,
//  7. deletes the entries no longer wanted, so old programs find their
//     entries until they are replaced and new programs find theirs from the
//     start,
//  8. detaches what is no longer wanted, unpins maps no longer wanted and
//     saves the state.
//
// A program that uses a map with a new layout is replaced together with it:
// the old program keeps the old map until its hook runs the new program.

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
)

// progRefs returns the maps a program's instructions refer to.
func progRefs(ps *ebpf.ProgramSpec) []string {
	var refs []string
	for _, ins := range ps.Instructions {
		if ins.IsLoadFromMap() && ins.Reference() != "" {
			refs = append(refs, ins.Reference())
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// desiredAttachments lists where the manifest wants programs attached, with
// cgroup hooks pointed at the daemon's cgroup.
func (d *Daemon) desiredAttachments(m *compiler.Manifest) []attachRecord {
	var out []attachRecord
	for _, p := range m.Programs {
		for _, a := range p.Attach {
			rec := attachRecord{Program: p.Name, Hook: a.Hook, Target: a.Device, Direction: a.Direction, Endpoint: a.Endpoint}
			if isCgroupHook(a.Hook) {
				rec.Target = d.opts.Cgroup
				rec.Direction = ""
			}
			out = append(out, rec)
		}
	}
	return out
}

var verifierProgRE = regexp.MustCompile(`program (\w+)`)

// loadError words a load failure, naming the program's CUE position.
func loadError(m *compiler.Manifest, err error) error {
	var pos string
	if sm := verifierProgRE.FindStringSubmatch(err.Error()); sm != nil {
		for _, p := range m.Programs {
			if p.Name == sm[1] {
				pos = p.Position
			}
		}
	}
	var ve *ebpf.VerifierError
	if errors.Is(err, unix.EMFILE) {
		return fmt.Errorf("loading the datapath into the kernel: %w (raise the limit on open files, ulimit -n)", err)
	}
	if !errors.As(err, &ve) {
		return fmt.Errorf("loading the datapath into the kernel: %w", err)
	}
	if pos != "" && pos != "-" {
		return fmt.Errorf("%s: the kernel's verifier rejected the datapath: %w", pos, err)
	}
	return fmt.Errorf("the kernel's verifier rejected the datapath: %w", err)
}

// reconcile makes the kernel run a (see the file comment). It holds d.mu.
func (d *Daemon) reconcile(a *Artifacts, source string) (res *ApplyResult, err error) {
	start := time.Now()
	res = &ApplyResult{Source: source}
	man := a.Manifest
	if man.Node != d.opts.Node {
		return nil, fmt.Errorf("%s: the artifacts are for node %q, this ebpfd runs node %q", a.Dir, man.Node, d.opts.Node)
	}
	desired, err := desiredEntries(a.Maps)
	if err != nil {
		return nil, err
	}
	manMaps := make(map[string]compiler.ManifestMap)
	for _, mm := range man.Maps {
		if a.Spec.Maps[mm.Name] == nil {
			return nil, fmt.Errorf("%s: the manifest names map %s, which the object does not have", a.Dir, mm.Name)
		}
		if strings.ContainsAny(mm.Name, "-./") {
			return nil, fmt.Errorf("%s: map name %q cannot be pinned (it must not contain '-', '.' or '/')", a.Dir, mm.Name)
		}
		manMaps[mm.Name] = mm
	}
	for name := range a.Spec.Maps {
		if _, ok := manMaps[name]; !ok {
			return nil, fmt.Errorf("%s: the object has map %s, which the manifest does not list", a.Dir, name)
		}
	}
	for name := range desired {
		if !manMaps[name].Sync {
			return nil, fmt.Errorf("%s: maps.json gives contents for map %s, which the manifest does not mark sync", a.Dir, name)
		}
	}

	// 1. Plan the maps.
	fresh := make(map[string]bool)
	repl := make(map[string]*ebpf.Map)
	for name, ms := range a.Spec.Maps {
		cur, err := d.openMap(name)
		if err != nil {
			return nil, err
		}
		reuse := cur != nil && ms.Compatible(cur) == nil
		if reuse && ms.Type == ebpf.ProgramArray {
			reuse = slotsCompatible(d.state.Maps[name].Slots, manMaps[name].Slots)
		}
		if reuse {
			repl[name] = cur
		} else {
			fresh[name] = true
		}
	}
	slotArray := make(map[string]string) // program → program array holding it
	for _, mm := range man.Maps {
		for _, s := range mm.Slots {
			if s != "" {
				slotArray[s] = mm.Name
			}
		}
	}

	// 1b. Plan the programs.
	want := d.desiredAttachments(man)
	wantByProg := make(map[string][]attachRecord)
	for _, rec := range want {
		wantByProg[rec.Program] = append(wantByProg[rec.Program], rec)
	}
	need := make(map[string]bool)
	for _, p := range man.Programs {
		ps := a.Spec.Programs[p.Name]
		if ps == nil {
			return nil, fmt.Errorf("%s: program %s is in the manifest but not in the object", a.Dir, p.Name)
		}
		old, ok := d.state.Programs[p.Name]
		keep := ok && old.SHA256 == p.SHA256 && old.Tag != ""
		for _, mn := range progRefs(ps) {
			keep = keep && !fresh[mn]
		}
		if arr, ok := slotArray[p.Name]; ok && keep {
			keep = !fresh[arr] && p.TailCallSlot != nil && d.slotTags[arr][*p.TailCallSlot] == old.Tag
		}
		for _, rec := range wantByProg[p.Name] {
			running := d.running[rec.key()] == old.Tag
			pending := d.pending[rec.key()].tag == old.Tag && d.pending[rec.key()].rec.Program == p.Name
			keep = keep && (running || pending)
		}
		if !keep {
			need[p.Name] = true
		}
	}
	if len(a.Spec.Programs) != len(man.Programs) {
		return nil, fmt.Errorf("%s: the object has %d programs, the manifest lists %d", a.Dir, len(a.Spec.Programs), len(man.Programs))
	}

	// 2. Load.
	loadStart := time.Now()
	arrays := make(map[string][]ebpf.MapKV)
	for name, ms := range a.Spec.Maps {
		if ms.Type == ebpf.ProgramArray {
			arrays[name] = ms.Contents
		}
	}
	ls, err := newLoadSet(d.opts.PinDir, a.Spec, repl, sortedKeys(need))
	if err != nil {
		return nil, loadError(man, err)
	}
	defer ls.close()
	res.LoadTime = time.Since(loadStart)
	res.Loaded = sortedKeys(need)
	tags := ls.tags

	// 3. Diff the kept maps the configuration owns.
	syncStart := time.Now()
	diffs := make(map[string]mapDiff)
	changes := make(map[string]*MapChange)
	for _, mm := range man.Maps {
		changes[mm.Name] = &MapChange{Name: mm.Name, Created: fresh[mm.Name]}
		if !mm.Sync || fresh[mm.Name] {
			continue
		}
		if prev, ok := d.lastDesired[mm.Name]; ok && maps.Equal(prev, desired[mm.Name]) {
			continue // unchanged since the last apply, which made the kernel equal to it
		}
		cur, err := readEntries(repl[mm.Name])
		if err != nil {
			return nil, fmt.Errorf("reading map %s: %w", mm.Name, err)
		}
		df := diffEntries(cur, desired[mm.Name])
		if n := len(cur) + len(df.add); n > int(mm.MaxEntries) {
			return nil, fmt.Errorf("map %s would need %d entries during the update (%d at most): raise settings.mapSizes or apply in smaller steps", mm.Name, n, mm.MaxEntries)
		}
		diffs[mm.Name] = df
	}
	for name := range fresh {
		if n := len(desired[name]); n > int(manMaps[name].MaxEntries) {
			return nil, fmt.Errorf("map %s needs %d entries, %d at most: raise settings.mapSizes", name, n, manMaps[name].MaxEntries)
		}
	}

	// 4. Fill the new maps and pin them.
	for _, name := range sortedKeys(fresh) {
		m := ls.maps[name]
		if ents := desired[name]; len(ents) > 0 {
			kvs := make([][2]string, 0, len(ents))
			for _, k := range sortedKeys(ents) {
				kvs = append(kvs, [2]string{k, ents[k]})
			}
			ops, err := d.writer.upsert(m, kvs)
			changes[name].Ops += ops
			if err != nil {
				return nil, fmt.Errorf("filling map %s: %w", name, err)
			}
			changes[name].Added = len(kvs)
		}
		if kvs, ok := arrays[name]; ok {
			for _, kv := range kvs {
				prog, done, err := ls.program(fmt.Sprint(kv.Value))
				if err != nil {
					return nil, fmt.Errorf("program array %s slot %v: %w", name, kv.Key, err)
				}
				err = m.Put(kv.Key, prog)
				done()
				if err != nil {
					return nil, fmt.Errorf("filling program array %s slot %v: %w", name, kv.Key, err)
				}
				changes[name].Ops++
			}
		}
	}
	st := d.state
	defer func() {
		// Whatever happened from here on is in the kernel: record it.
		st.Source = source
		if serr := d.saveState(st); serr != nil {
			d.log.Error("saving state", "err", serr)
			if err == nil {
				err = serr
			}
		}
	}()
	for _, name := range sortedKeys(fresh) {
		if err := pinReplace(ls.maps[name], filepath.Join(d.opts.PinDir, name)); err != nil {
			return nil, err
		}
		if old := d.maps[name]; old != nil {
			// Programs still attached use the old map. A program array
			// whose last user reference (fd or pin) goes away is emptied
			// by the kernel, so keep it open until they are replaced.
			d.retired = append(d.retired, old)
		}
		d.maps[name] = ls.take(name)
		mm := manMaps[name]
		st.Maps[name] = mapRecord{Type: mm.Type, Sync: mm.Sync, Slots: mm.Slots}
		delete(d.slotTags, name)
	}

	// 5. Additions and changes into kept maps.
	for _, name := range sortedKeys(diffs) {
		df := diffs[name]
		ops, err := d.writer.upsert(d.maps[name], slices.Concat(df.add, df.update))
		changes[name].Ops += ops
		if err != nil {
			return res, fmt.Errorf("updating map %s: %w", name, err)
		}
		changes[name].Added, changes[name].Updated = len(df.add), len(df.update)
	}
	res.SyncTime = time.Since(syncStart)

	// 6. Programs: tail-call slots of kept arrays, then attachments.
	for _, p := range man.Programs {
		arr, ok := slotArray[p.Name]
		if !ok || fresh[arr] || !need[p.Name] {
			continue
		}
		prog, done, err := ls.program(p.Name)
		if err != nil {
			return res, err
		}
		err = d.maps[arr].Put(uint32(*p.TailCallSlot), prog)
		done()
		if err != nil {
			return res, fmt.Errorf("swapping %s into %s slot %d: %w", p.Name, arr, *p.TailCallSlot, err)
		}
		changes[arr].Ops++
		if _, ok := d.state.Programs[p.Name]; ok {
			res.Replaced = append(res.Replaced, p.Name)
		}
	}
	for _, p := range man.Programs {
		if _, ok := need[p.Name]; ok {
			slot := p.TailCallSlot
			st.Programs[p.Name] = progRecord{SHA256: p.SHA256, Tag: tags[p.Name], TailCallSlot: slot}
			if arr, ok := slotArray[p.Name]; ok && slot != nil {
				if d.slotTags[arr] == nil {
					d.slotTags[arr] = make(map[int]string)
				}
				d.slotTags[arr][*slot] = tags[p.Name]
			}
		}
	}
	oldPending := d.pending
	d.pending = make(map[string]pendingAttach)
	defer func() {
		for _, pa := range oldPending {
			pa.release()
		}
	}()
	current := make(map[string]int) // attachment key → index in st.Attachments
	for i, rec := range st.Attachments {
		current[rec.key()] = i
	}
	for _, rec := range want {
		_, exists := current[rec.key()]
		if !need[rec.Program] {
			if pa, ok := oldPending[rec.key()]; ok && !exists {
				// Still waiting for its device, with the same program.
				d.pending[rec.key()] = pa
				delete(oldPending, rec.key())
				res.Pending = append(res.Pending, rec.String())
			}
			continue
		}
		prog, release, err := ls.program(rec.Program)
		if err != nil {
			return res, err
		}
		err = d.attachOne(res, st, rec, prog, tags[rec.Program], current)
		release()
		if err != nil {
			return res, err
		}
	}

	// 7. Deletions from kept maps.
	for _, name := range sortedKeys(diffs) {
		ops, err := d.writer.remove(d.maps[name], diffs[name].del)
		changes[name].Ops += ops
		if err != nil {
			return res, fmt.Errorf("deleting from map %s: %w", name, err)
		}
		changes[name].Deleted = len(diffs[name].del)
	}

	// 8. Remove what is no longer wanted: first the attachments, then the
	// tail-call slots of kept program arrays that no program fills now
	// (nothing attached calls them any more).
	wanted := make(map[string]bool)
	for _, rec := range want {
		wanted[rec.key()] = true
	}
	var kept []attachRecord
	for _, rec := range st.Attachments {
		if wanted[rec.key()] {
			kept = append(kept, rec)
			continue
		}
		if err := d.at.detach(rec); err != nil {
			return res, err
		}
		delete(d.running, rec.key())
		res.Detached = append(res.Detached, rec.String())
	}
	st.Attachments = kept
	for _, mm := range man.Maps {
		if mm.Type != "prog_array" || fresh[mm.Name] {
			continue
		}
		if err := d.clearSlots(mm.Name, st.Maps[mm.Name].Slots, mm.Slots, changes[mm.Name]); err != nil {
			return res, err
		}
		st.Maps[mm.Name] = mapRecord{Type: mm.Type, Sync: mm.Sync, Slots: mm.Slots}
	}
	for name := range st.Programs {
		if !slices.ContainsFunc(man.Programs, func(p compiler.ManifestProg) bool { return p.Name == name }) {
			delete(st.Programs, name)
		}
	}
	for _, name := range sortedKeys(d.maps) {
		if _, ok := manMaps[name]; ok {
			continue
		}
		d.maps[name].Close()
		delete(d.maps, name)
		delete(st.Maps, name)
		delete(d.lastDesired, name)
		delete(d.slotTags, name)
		if err := os.Remove(filepath.Join(d.opts.PinDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("unpinning map %s: %w", name, err)
		}
		changes[name] = &MapChange{Name: name, Removed: true}
	}
	d.removeStrayPins(manMaps)
	for _, m := range d.retired {
		m.Close()
	}
	d.retired = nil

	for _, name := range sortedKeys(changes) {
		if c := changes[name]; c.Changed() || c.Ops > 0 {
			res.Maps = append(res.Maps, *c)
		}
	}
	for name := range manMaps {
		if manMaps[name].Sync {
			d.lastDesired[name] = desired[name]
		}
	}
	res.Unchanged = len(res.Loaded) == 0 && len(res.Maps) == 0 && len(res.Detached) == 0
	if !res.Unchanged || st.Generation == 0 {
		st.Generation++
	}
	res.Generation = st.Generation
	res.TotalTime = time.Since(start)
	return res, nil
}

// saveState writes the whole state, which includes the journal of
// incremental applies.
func (d *Daemon) saveState(st *pinState) error {
	if err := saveState(d.opts.PinDir, st); err != nil {
		return err
	}
	d.journal = nil
	return nil
}

// slotsCompatible reports whether a program array holding the slots old
// can be kept for the slots new: no slot changes from one program to
// another, so a program that runs now never tail-calls into another
// endpoint's program. Slots that are filled or emptied are updated one by
// one.
func slotsCompatible(old, new []string) bool {
	for i := range min(len(old), len(new)) {
		if old[i] != "" && new[i] != "" && old[i] != new[i] {
			return false
		}
	}
	return true
}

// clearSlots deletes, from the kept program array name, the slots that old
// fills and new leaves empty.
func (d *Daemon) clearSlots(name string, old, new []string, change *MapChange) error {
	for i, prog := range old {
		if prog == "" || i < len(new) && new[i] != "" {
			continue
		}
		if err := d.maps[name].Delete(uint32(i)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("emptying %s slot %d (was %s): %w", name, i, prog, err)
		}
		change.Ops++
		delete(d.slotTags[name], i)
	}
	return nil
}

// attachOne makes rec run prog: it replaces the program where rec is
// attached already, attaches it otherwise, and leaves it waiting when the
// device does not exist.
func (d *Daemon) attachOne(res *ApplyResult, st *pinState, rec attachRecord, prog *ebpf.Program, tag string, current map[string]int) error {
	i, exists := current[rec.key()]
	if exists && d.running[rec.key()] != "" {
		old := st.Attachments[i]
		err := d.at.replace(old, prog)
		if err == nil {
			st.Attachments[i].Program, st.Attachments[i].Endpoint = rec.Program, rec.Endpoint
			d.running[rec.key()] = tag
			res.Replaced = append(res.Replaced, rec.Program+" at "+rec.String())
			return nil
		}
		if !errors.Is(err, errNoDevice) && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// The attachment went away behind our back: attach afresh.
		d.log.Warn("attachment vanished; attaching again", "attachment", old.String())
	}
	done, err := d.at.attach(rec, prog)
	if errors.Is(err, errNoDevice) {
		pa, err := d.newPending(rec, prog, tag)
		if err != nil {
			return err
		}
		d.pending[rec.key()] = pa
		res.Pending = append(res.Pending, rec.String())
		return nil
	}
	if err != nil {
		return err
	}
	if exists {
		st.Attachments[i] = done
	} else {
		current[rec.key()] = len(st.Attachments)
		st.Attachments = append(st.Attachments, done)
	}
	d.running[rec.key()] = tag
	res.Attached = append(res.Attached, done.String())
	return nil
}

// openMap returns the open handle of a map of the running datapath, opening
// its pin when the daemon has not yet (after a restart). It returns nil when
// the map does not exist.
func (d *Daemon) openMap(name string) (*ebpf.Map, error) {
	if m := d.maps[name]; m != nil {
		return m, nil
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(d.opts.PinDir, name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening pinned map %s: %w", name, err)
	}
	d.maps[name] = m
	return m, nil
}

// removeStrayPins removes pins in the pin directory that are neither a map
// of the datapath nor ebpfd's own (leftovers of an interrupted apply).
func (d *Daemon) removeStrayPins(manMaps map[string]compiler.ManifestMap) {
	ents, err := os.ReadDir(d.opts.PinDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if _, ok := manMaps[name]; ok || name == linksDir || name == stateName || name == journalName || name == stagingDir || name == pendingDir {
			continue
		}
		d.log.Info("removing stale pin", "pin", filepath.Join(d.opts.PinDir, name))
		os.RemoveAll(filepath.Join(d.opts.PinDir, name))
	}
	waiting := make(map[string]bool)
	for _, pa := range d.pending {
		waiting[pa.pin] = true
	}
	pend, _ := os.ReadDir(filepath.Join(d.opts.PinDir, pendingDir))
	for _, e := range pend {
		if path := filepath.Join(d.opts.PinDir, pendingDir, e.Name()); !waiting[path] {
			os.Remove(path)
		}
	}
	links, _ := os.ReadDir(filepath.Join(d.opts.PinDir, linksDir))
	owned := make(map[string]bool)
	for _, rec := range d.state.Attachments {
		owned[rec.Pin] = true
	}
	for _, e := range links {
		rel := filepath.Join(linksDir, e.Name())
		if owned[rel] {
			continue
		}
		d.log.Info("removing stale link", "pin", filepath.Join(d.opts.PinDir, rel))
		os.Remove(filepath.Join(d.opts.PinDir, rel))
	}
}

// adopt reads the state a previous daemon left and checks it against the
// kernel: which program each attachment and each tail-call slot runs.
func (d *Daemon) adopt() error {
	st, err := loadState(d.opts.PinDir)
	if err != nil {
		return err
	}
	if st == nil {
		d.state = newPinState(d.opts.Node)
		return nil
	}
	if st.Node != d.opts.Node {
		return fmt.Errorf("%s holds the datapath of node %q, not %q; choose another --pin-dir", d.opts.PinDir, st.Node, d.opts.Node)
	}
	d.state = st
	for _, rec := range st.Attachments {
		tag, err := d.at.runningTag(rec)
		if err != nil {
			d.log.Warn("adopting: attachment not found", "attachment", rec.String(), "err", err)
			continue
		}
		d.running[rec.key()] = tag
	}
	for name, mr := range st.Maps {
		if len(mr.Slots) == 0 {
			continue
		}
		m, err := d.openMap(name)
		if err != nil || m == nil {
			continue
		}
		tags := make(map[int]string)
		for i, prog := range mr.Slots {
			if prog == "" {
				continue
			}
			var id uint32
			if err := m.Lookup(uint32(i), &id); err != nil {
				continue
			}
			if tag, err := programTag(ebpf.ProgramID(id)); err == nil {
				tags[i] = tag
			}
		}
		d.slotTags[name] = tags
	}
	for _, dev := range st.Qdiscs {
		d.qdiscs[dev] = true
	}
	d.log.Info("adopted pinned datapath", "generation", st.Generation, "programs", len(st.Programs),
		"attachments", len(st.Attachments), "running", len(d.running), "source", st.Source)
	return nil
}

// retryPending attaches what waited for its device.
func (d *Daemon) retryPending() {
	if len(d.pending) == 0 {
		return
	}
	changed := false
	for key, pa := range d.pending {
		prog, err := ebpf.LoadPinnedProgram(pa.pin, nil)
		if err != nil {
			d.log.Error("opening a waiting program", "attachment", pa.rec.String(), "err", err)
			continue
		}
		done, err := d.at.attach(pa.rec, prog)
		prog.Close()
		if errors.Is(err, errNoDevice) {
			continue
		}
		if err != nil {
			d.log.Error("attaching", "attachment", pa.rec.String(), "err", err)
			continue
		}
		d.running[key] = pa.tag
		d.state.Attachments = append(d.state.Attachments, done)
		pa.release()
		delete(d.pending, key)
		changed = true
		d.log.Info("attached", "attachment", done.String(), "mode", done.Mode)
	}
	if changed {
		if err := d.saveState(d.state); err != nil {
			d.log.Error("saving state", "err", err)
		}
	}
}

// pendingAttach is an attachment waiting for its device. Its program is
// pinned under PINDIR/ebpfd-pending rather than held open, so that a node
// whose devices are not there yet does not run out of descriptors.
type pendingAttach struct {
	rec attachRecord
	pin string
	tag string
}

func (d *Daemon) newPending(rec attachRecord, prog *ebpf.Program, tag string) (pendingAttach, error) {
	dir := filepath.Join(d.opts.PinDir, pendingDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pendingAttach{}, err
	}
	pin := filepath.Join(dir, strings.NewReplacer("/", "_", "|", "_", ".", "_").Replace(rec.key()))
	os.Remove(pin)
	clone, err := prog.Clone()
	if err != nil {
		return pendingAttach{}, err
	}
	defer clone.Close()
	if err := clone.Pin(pin); err != nil {
		return pendingAttach{}, fmt.Errorf("pinning the program waiting for %s: %w", rec, err)
	}
	return pendingAttach{rec: rec, pin: pin, tag: tag}, nil
}

func (pa pendingAttach) release() { os.Remove(pa.pin) }

func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}

// Cleanup detaches and unpins everything ebpfd owns for the node whose pins
// are in pinDir, and removes clsact qdiscs that ebpfd created.
func Cleanup(pinDir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := loadState(pinDir)
	if err != nil {
		log.Warn("reading state; removing pins anyway", "err", err)
	}
	at := &attacher{pinDir: pinDir}
	var errs []error
	if st != nil {
		for _, rec := range st.Attachments {
			if err := at.detach(rec); err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("detached", "attachment", rec.String())
		}
		for _, dev := range st.Qdiscs {
			if err := removeQdisc(dev); err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("removed clsact qdisc", "device", dev)
		}
	}
	// Links pinned without a state record still hold programs attached.
	links, _ := os.ReadDir(filepath.Join(pinDir, linksDir))
	for _, e := range links {
		os.Remove(filepath.Join(pinDir, linksDir, e.Name()))
	}
	if err := os.RemoveAll(pinDir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", pinDir, err))
	} else {
		log.Info("removed pins", "dir", pinDir)
	}
	return errors.Join(errs...)
}
