//go:build linux

package runtime

// The incremental path. After a full apply of a configuration the daemon
// keeps the configuration's model and a lower.Incremental for its node.
// When the next configuration differs from it only by policies changed
// and endpoints added, the daemon computes the change instead of compiling
// the node again:
//
//  1. compute: what changed (the rest of the model must be equal), then
//     lower.Incremental.ChangePolicies for the policies and
//     lower.Incremental.AddEndpoint for each endpoint added — the map
//     entries that change, the programs of an endpoint added to this node,
//     and the programs of running endpoints that change (their enforcement
//     or audit changed, or they move to another index to make room);
//  2. compile those programs only (compiler.CompilePartial: passes, code
//     generation, static verifier);
//  3. load them and create the new endpoints' policy maps; a verifier
//     error stops here with nothing changed;
//  4. fill and pin the new maps, write the added and changed entries into
//     the running maps; swap the changed programs of running endpoints,
//     endpoint by endpoint (new tail-call slots, then the entry programs,
//     then the slots they no longer use); fill the new programs' slots,
//     attach the new entry programs, and only then delete entries no longer
//     wanted;
//  5. record it all (state, manifest, event names) as a full apply would.
//
// Endpoint indexes, tail-call slots and default-deny cookies depend on the
// endpoint alone (compiler/lower/slots.go), and the default-deny cookies do
// not depend on the number of rules, so other programs do not change.
// Anything else — a removed or changed endpoint, a changed node, namespace
// or setting, an identity that would move, an endpoint that gains or loses
// its policy programs — takes the full path.

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
)

// incState is what the incremental path keeps of the running datapath's
// configuration.
type incState struct {
	source string
	cfg    *model.Config
	node   *model.Node
	low    *lower.Incremental
}

// rememberConfig keeps cfg, just applied in full from source, for the
// incremental path. It holds d.mu.
func (d *Daemon) rememberConfig(source string, cfg *model.Config) {
	d.inc = nil
	i := slices.IndexFunc(cfg.Nodes, func(n *model.Node) bool { return n.Name == d.opts.Node })
	if i < 0 {
		return
	}
	low, err := lower.NewIncremental(cfg, cfg.Nodes[i])
	if err != nil {
		d.log.Info("no incremental path for this configuration", "err", err)
		return
	}
	d.inc = &incState{source: source, cfg: cfg, node: cfg.Nodes[i], low: low}
}

// configChange compares the running model cur with next: ok when next is
// cur with its policies changed (policies) and endpoints added, which it
// returns in order. Positions are ignored except in policies and
// settings, whose positions the manifest's cookies name.
func configChange(cur, next *model.Config) (added []*model.Endpoint, policies, ok bool) {
	if !sameCluster(&cur.Cluster, &next.Cluster) ||
		!slices.EqualFunc(cur.Nodes, next.Nodes, sameNode) ||
		!slices.EqualFunc(cur.Namespaces, next.Namespaces, func(a, b *model.Namespace) bool {
			return a.Name == b.Name && maps.Equal(a.Labels, b.Labels)
		}) ||
		len(cur.Services)+len(next.Services) > 0 || cur.NAT != nil || next.NAT != nil ||
		!reflect.DeepEqual(cur.Settings, next.Settings) {
		return nil, false, false
	}
	policies = !slices.EqualFunc(cur.Policies, next.Policies, func(a, b *model.Policy) bool { return lower.EqualPolicy(a, b, true) })
	added, ok = addedEndpoints(cur, next)
	return added, policies, ok
}

// addedEndpoints compares the endpoints of the running model cur with
// next's: ok when next's are cur's with endpoints added, which it returns
// in order.
func addedEndpoints(cur, next *model.Config) (added []*model.Endpoint, ok bool) {
	i := 0
	for _, ep := range next.Endpoints {
		if i < len(cur.Endpoints) && cur.Endpoints[i].ID() == ep.ID() {
			if !sameEndpoint(cur.Endpoints[i], ep) {
				return nil, false
			}
			i++
			continue
		}
		added = append(added, ep)
	}
	return added, i == len(cur.Endpoints)
}

func sameCluster(a, b *model.Cluster) bool {
	return a.Name == b.Name && slices.Equal(a.PodCIDRs, b.PodCIDRs) &&
		slices.Equal(a.ServiceCIDRs, b.ServiceCIDRs) && slices.Equal(a.APIServer, b.APIServer)
}

func sameNode(a, b *model.Node) bool {
	return a.Name == b.Name && slices.Equal(a.Addresses, b.Addresses) && a.Zone == b.Zone &&
		maps.Equal(a.Labels, b.Labels) && slices.Equal(a.Devices, b.Devices) && maps.Equal(a.Features, b.Features)
}

func sameEndpoint(a, b *model.Endpoint) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.Node == b.Node && a.Interface == b.Interface &&
		slices.Equal(a.Addresses, b.Addresses) && maps.Equal(a.Labels, b.Labels) &&
		slices.EqualFunc(a.NamedPorts, b.NamedPorts, func(x, y model.NamedPort) bool {
			return x.Name == y.Name && x.Port == y.Port && x.Protocol == y.Protocol
		}) &&
		slices.EqualFunc(a.HostPorts, b.HostPorts, func(x, y model.HostPort) bool {
			return x.HostPort == y.HostPort && x.ContainerPort == y.ContainerPort && x.Protocol == y.Protocol && x.HostIP == y.HostIP
		})
}

// withEndpoint is cfg with ep added, the endpoints sorted as the loader
// sorts them.
func withEndpoint(cfg *model.Config, ep *model.Endpoint) *model.Config {
	out := *cfg
	i, _ := slices.BinarySearchFunc(cfg.Endpoints, ep, func(a, b *model.Endpoint) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	out.Endpoints = slices.Insert(slices.Clip(cfg.Endpoints), i, ep)
	return &out
}

// entryChange is the value a key gets, or nil when it is deleted.
type entryChange = *string

// incrementalPlan is an incremental change, computed and compiled, before
// anything in the kernel changes.
type incrementalPlan struct {
	cfg      *model.Config
	parts    []*compiler.Manifest // one per endpoint added to the node
	replaced []*compiler.Manifest // programs of running endpoints that change
	// units are the replaced programs, in the order they are swapped in
	// (checkPlan).
	units []swapUnit
	// cookies is the node's complete list of cookies when the change
	// renumbers or moves any.
	cookies  []lower.Cookie
	objs     []*backend.Object
	irMaps   map[string]*ir.Map                // layouts of the maps the new programs use
	changes  map[string]map[string]entryChange // by map, by key bytes
	created  map[string]bool                   // maps the change creates
	programs []*backend.Program
}

// errFullPath says the change must take the full path; errUntouched says
// so too, before anything (the Incremental included) has changed.
var (
	errFullPath  = errors.New("the change needs the full path")
	errUntouched = errors.New("the change needs the full path; nothing has changed")
)

// applyIncremental applies cfg, loaded from source, through the incremental
// path. ok is false when the change must take the full path instead; then
// nothing has changed. It holds d.mu.
func (d *Daemon) applyIncremental(source string, cfg *model.Config, configTime time.Duration) (res *ApplyResult, ok bool, err error) {
	inc := d.inc
	if inc == nil || inc.source != source || d.manifest == nil || len(d.retired) > 0 {
		return nil, false, nil
	}
	start := time.Now()
	res = &ApplyResult{Source: source, Incremental: true, ConfigTime: configTime}
	added, policies, same := configChange(inc.cfg, cfg)
	if !same {
		return nil, false, nil
	}
	res.ComputeTime = time.Since(start)
	if len(added) == 0 && !policies {
		// The configuration is the running one (a file touched, or
		// rewritten with the same meaning).
		res.Unchanged = true
		res.Generation = d.state.Generation
		res.TotalTime = configTime + time.Since(start)
		return res, true, nil
	}
	plan, err := d.planIncremental(inc, cfg, added, policies, res)
	if errors.Is(err, errUntouched) {
		return nil, false, nil
	}
	if err != nil {
		// The Incremental has changed: forget it (the full apply makes a
		// new one); the full path reports what is wrong, if anything.
		d.inc = nil
		d.log.Info("taking the full path", "reason", err)
		return nil, false, nil
	}
	if err := d.commitIncremental(plan, res); err != nil {
		d.inc = nil
		return res, true, err
	}
	inc.cfg = plan.cfg
	res.TotalTime = configTime + time.Since(start)
	return res, true, nil
}

// planIncremental computes and compiles the change: cfg's policies when
// policies is set, then the endpoints added. Any error means the full
// path; the Incremental has then changed and must be dropped, except after
// errUntouched.
func (d *Daemon) planIncremental(inc *incState, cfg *model.Config, added []*model.Endpoint, policies bool, res *ApplyResult) (*incrementalPlan, error) {
	computeStart := time.Now()
	plan := &incrementalPlan{
		cfg:     inc.cfg,
		irMaps:  make(map[string]*ir.Map),
		changes: make(map[string]map[string]entryChange),
		created: make(map[string]bool),
	}
	var parts, replaced []*lower.Result
	take := func(delta *lower.Delta) error {
		for _, r := range []*lower.Result{delta.Programs, delta.Replaced} {
			if r == nil {
				continue
			}
			for _, m := range r.Module.Maps {
				plan.irMaps[m.Name] = m
			}
		}
		if delta.Programs != nil {
			parts = append(parts, delta.Programs)
		}
		if delta.Replaced != nil {
			replaced = append(replaced, delta.Replaced)
		}
		if delta.Cookies != nil {
			plan.cookies = delta.Cookies
		}
		for _, md := range delta.Maps {
			if err := d.planMapDelta(plan, md); err != nil {
				return err
			}
		}
		return nil
	}
	if policies {
		next := *plan.cfg
		next.Policies = cfg.Policies
		delta, err := inc.low.ChangePolicies(&next)
		if err != nil {
			return nil, err // the Incremental may have changed
		}
		plan.cfg = &next
		if err := take(delta); err != nil {
			return nil, err
		}
	}
	for _, ep := range added {
		next := withEndpoint(plan.cfg, ep)
		delta, err := inc.low.AddEndpoint(next, ep)
		if err != nil {
			if errors.Is(err, lower.ErrNeedsFullCompile) && plan.cfg == inc.cfg {
				return nil, errUntouched
			}
			return nil, err
		}
		plan.cfg = next
		if err := take(delta); err != nil {
			return nil, err
		}
	}
	res.ComputeTime += time.Since(computeStart)

	compileStart := time.Now()
	for i, part := range slices.Concat(parts, replaced) {
		obj, man, err := compiler.CompilePartial(inc.node, part)
		if err != nil {
			return nil, err
		}
		plan.objs = append(plan.objs, obj)
		if i < len(parts) {
			plan.parts = append(plan.parts, man)
		} else {
			plan.replaced = append(plan.replaced, man)
		}
		plan.programs = append(plan.programs, obj.Programs...)
	}
	if len(plan.objs) > 0 {
		res.CompileTime = time.Since(compileStart) // zero when nothing was compiled
	}
	return plan, d.checkPlan(plan)
}

// planMapDelta encodes one map's delta into plan.changes.
func (d *Daemon) planMapDelta(plan *incrementalPlan, md lower.MapDelta) error {
	key, value, ok := d.mapLayout(plan, md.Map)
	if !ok {
		return fmt.Errorf("map %s: no layout", md.Map)
	}
	if md.Created {
		plan.created[md.Map] = true
	} else if _, ok := d.lastDesired[md.Map]; !ok {
		return fmt.Errorf("map %s: its contents were not recorded", md.Map)
	}
	ch := plan.changes[md.Map]
	if ch == nil {
		ch = make(map[string]entryChange)
		plan.changes[md.Map] = ch
	}
	put := func(e lower.Entry) error {
		kb, err := compiler.EncodeStruct(key, e.Key)
		if err != nil {
			return fmt.Errorf("map %s key: %w", md.Map, err)
		}
		vb, err := compiler.EncodeStruct(value, e.Value)
		if err != nil {
			return fmt.Errorf("map %s value: %w", md.Map, err)
		}
		v := string(vb)
		ch[string(kb)] = &v
		return nil
	}
	for _, e := range slices.Concat(md.Added, md.Updated) {
		if err := put(e); err != nil {
			return err
		}
	}
	for _, e := range md.Deleted {
		kb, err := compiler.EncodeStruct(key, e.Key)
		if err != nil {
			return fmt.Errorf("map %s key: %w", md.Map, err)
		}
		ch[string(kb)] = nil
	}
	return nil
}

// mapLayout returns the key and value layouts of map name: from the new
// programs' maps, else from the running manifest.
func (d *Daemon) mapLayout(plan *incrementalPlan, name string) (key, value ir.Struct, ok bool) {
	if m := plan.irMaps[name]; m != nil {
		return m.Key, m.Value, true
	}
	for _, mm := range d.manifest.Maps {
		if mm.Name == name {
			return irStruct(mm.Key), irStruct(mm.Value), true
		}
	}
	return ir.Struct{}, ir.Struct{}, false
}

// irStruct is the layout a manifest describes, as the compiler encodes it.
func irStruct(ms compiler.ManifestStruct) ir.Struct {
	s := ir.Struct{Name: ms.Name}
	for _, f := range ms.Fields {
		s.Fields = append(s.Fields, ir.Field{Name: f.Name, Size: f.Size, BigEndian: f.BigEndian})
	}
	return s
}

// checkPlan checks that the running datapath can take the change: every
// map the new programs use runs with the same layout or is created by the
// change, the program array can take their slots once the replaced
// programs have moved, no new program or map name is taken, and every
// replaced program runs. It orders the replaced programs (plan.units).
func (d *Daemon) checkPlan(plan *incrementalPlan) error {
	owner, err := d.planSwaps(plan)
	if err != nil {
		return err
	}
	for name, m := range plan.irMaps {
		if plan.created[name] {
			if _, ok := d.state.Maps[name]; ok {
				return fmt.Errorf("%w: map %s exists", errFullPath, name)
			}
			continue
		}
		cur, err := d.openMap(name)
		if err != nil || cur == nil {
			return fmt.Errorf("%w: map %s does not run", errFullPath, name)
		}
		spec := backend.MapSpec(m)
		spec.Contents = nil
		if err := spec.Compatible(cur); err != nil {
			return fmt.Errorf("%w: map %s: %v", errFullPath, name, err)
		}
		if m.Type == ir.MapProgArray && name != lowerProgArray {
			return fmt.Errorf("%w: program array %s", errFullPath, name)
		}
	}
	replaced := make(map[string]bool)
	for _, part := range plan.replaced {
		for _, p := range part.Programs {
			replaced[p.Name] = true
		}
	}
	for _, part := range plan.parts {
		for _, p := range part.Programs {
			if _, ok := d.state.Programs[p.Name]; ok || replaced[p.Name] {
				return fmt.Errorf("%w: program %s runs already", errFullPath, p.Name)
			}
			if s := p.TailCallSlot; s != nil && owner(*s) != "" {
				return fmt.Errorf("%w: slot %d of %s holds %s", errFullPath, *s, lowerProgArray, owner(*s))
			}
		}
	}
	for name := range plan.created {
		if plan.irMaps[name] == nil {
			return fmt.Errorf("%w: map %s is created without a layout", errFullPath, name)
		}
	}
	return nil
}

// swapUnit is what an incremental apply replaces of one entry program of
// a running endpoint: the entry program (when its code changes) and the
// tail-call programs it calls (when theirs does), swapped in together —
// the new tail-call slots, then the entry program, then the slots it no
// longer calls — so that no packet runs an entry program whose slots hold
// another endpoint's programs.
type swapUnit struct {
	part  *compiler.Manifest
	entry string                  // "" when only the tail-call programs change
	tails []compiler.ManifestProg // with their new slots
	from  []int                   // the slot each of tails holds now
}

// planSwaps groups the replaced programs into swap units and orders them
// so that each unit's new slots are free (or its own) when it is swapped
// in: an endpoint that moves to the index another one leaves goes after
// it. It returns which program holds each slot once they are all swapped.
func (d *Daemon) planSwaps(plan *incrementalPlan) (func(int) string, error) {
	slots := d.state.Maps[lowerProgArray].Slots
	overlay := make(map[int]string)
	owner := func(i int) string {
		if prog, ok := overlay[i]; ok {
			return prog
		}
		if i < len(slots) {
			return slots[i]
		}
		return ""
	}
	units := make(map[string]*swapUnit)
	seen := make(map[string]bool)
	for _, part := range plan.replaced {
		for _, p := range part.Programs {
			rec, ok := d.state.Programs[p.Name]
			if !ok || seen[p.Name] || (p.TailCallSlot == nil) != (rec.TailCallSlot == nil) {
				return nil, fmt.Errorf("%w: program %s cannot be replaced where it runs", errFullPath, p.Name)
			}
			seen[p.Name] = true
			entry := p.Name
			if p.TailCallSlot != nil {
				entry = strings.TrimSuffix(strings.TrimSuffix(p.Name, "_ipv4"), "_ipv6")
			}
			u := units[entry]
			if u == nil {
				u = &swapUnit{part: part}
				units[entry] = u
			}
			if p.TailCallSlot == nil {
				u.entry = p.Name
			} else {
				u.tails = append(u.tails, p)
				u.from = append(u.from, *rec.TailCallSlot)
			}
		}
	}
	keys := sortedKeys(units)
	done := make(map[string]bool)
	for len(done) < len(keys) {
		progress := false
		for _, k := range keys {
			u := units[k]
			if done[k] || slices.ContainsFunc(u.tails, func(t compiler.ManifestProg) bool {
				o := owner(*t.TailCallSlot)
				return o != "" && o != t.Name
			}) {
				continue
			}
			for _, from := range u.from {
				overlay[from] = ""
			}
			for _, t := range u.tails {
				overlay[*t.TailCallSlot] = t.Name
			}
			plan.units = append(plan.units, *u)
			done[k], progress = true, true
		}
		if !progress {
			return nil, fmt.Errorf("%w: the replaced programs' slots are held by programs that stay", errFullPath)
		}
	}
	return owner, nil
}

// commitIncremental makes the kernel run the plan (see the file comment)
// and records it.
func (d *Daemon) commitIncremental(plan *incrementalPlan, res *ApplyResult) (err error) {
	kernelStart := time.Now()
	defer func() { res.KernelTime = time.Since(kernelStart) }()

	// Load: the new maps and programs, nothing visible yet.
	spec := &ebpf.CollectionSpec{Maps: make(map[string]*ebpf.MapSpec), Programs: make(map[string]*ebpf.ProgramSpec)}
	keep := make(map[string]*ebpf.Map)
	for name, m := range plan.irMaps {
		spec.Maps[name] = backend.MapSpec(m)
		if !plan.created[name] {
			keep[name] = d.maps[name]
		}
	}
	var names []string
	for i, obj := range plan.objs {
		for _, p := range obj.Programs {
			spec.Programs[p.Name] = &ebpf.ProgramSpec{Name: p.Name, Type: p.Type, SectionName: p.Section, Instructions: p.Insns, License: plan.objs[i].License}
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	loadStart := time.Now()
	ls, err := newLoadSet(d.opts.PinDir, spec, keep, names)
	if err != nil {
		return loadError(d.partManifest(plan), err)
	}
	defer ls.close()
	res.LoadTime = time.Since(loadStart)
	res.Loaded = names

	// Entries, in the order a full apply writes them.
	syncStart := time.Now()
	changes := make(map[string]*MapChange)
	change := func(name string) *MapChange {
		if changes[name] == nil {
			changes[name] = &MapChange{Name: name, Created: plan.created[name]}
		}
		return changes[name]
	}
	dels := make(map[string][]string)
	defer func() {
		if err != nil {
			// What the kernel holds is not known: make the next full
			// apply read the touched maps back.
			for name := range plan.changes {
				delete(d.lastDesired, name)
			}
		}
	}()
	for _, name := range sortedKeys(plan.changes) {
		cur := d.lastDesired[name]
		if plan.created[name] || cur == nil {
			cur = make(entrySet)
			d.lastDesired[name] = cur
		}
		var upserts [][2]string
		next := cur // updated in place: the desired contents from now on
		c := change(name)
		for _, k := range sortedKeys(plan.changes[name]) {
			v := plan.changes[name][k]
			old, had := cur[k]
			switch {
			case v == nil && had:
				dels[name] = append(dels[name], k)
				delete(next, k)
				c.Deleted++
			case v == nil:
			case v != nil && !had:
				upserts = append(upserts, [2]string{k, *v})
				next[k] = *v
				c.Added++
			case v != nil && old != *v:
				upserts = append(upserts, [2]string{k, *v})
				next[k] = *v
				c.Updated++
			}
		}
		target := ls.maps[name]
		if target == nil {
			target = d.maps[name] // a running map the new programs do not use
		}
		if target == nil {
			return fmt.Errorf("map %s does not run", name)
		}
		if n := len(next); n > int(target.MaxEntries()) {
			return fmt.Errorf("map %s would need %d entries (%d at most): raise settings.mapSizes", name, n, target.MaxEntries())
		}
		ops, err := d.writer.upsert(target, upserts)
		c.Ops += ops
		if err != nil {
			return fmt.Errorf("updating map %s: %w", name, err)
		}
	}
	st := d.state
	delta := &stateDelta{Programs: make(map[string]progRecord), Maps: make(map[string]mapRecord), Slots: make(map[string]map[int]string)}
	attached := len(st.Attachments)
	defer func() {
		// Whatever happened is in the kernel: record it, as a journal
		// entry when all went well, else as the whole state.
		var serr error
		if err != nil || len(d.journal) >= maxJournal {
			serr = d.saveState(st)
		} else {
			delta.Generation, delta.Source = st.Generation, st.Source
			delta.Attachments = slices.Clone(st.Attachments[attached:])
			if serr = saveJournal(d.opts.PinDir, append(d.journal, *delta)); serr == nil {
				d.journal = append(d.journal, *delta)
			}
		}
		if serr != nil {
			d.log.Error("saving state", "err", serr)
			if err == nil {
				err = serr
			}
		}
	}()
	for _, name := range sortedKeys(plan.created) {
		if err := pinReplace(ls.maps[name], filepath.Join(d.opts.PinDir, name)); err != nil {
			return err
		}
		d.maps[name] = ls.take(name)
		st.Maps[name] = mapRecord{Type: plan.manifestMap(name).Type, Sync: true}
		delta.Maps[name] = st.Maps[name]
		change(name)
	}

	current := make(map[string]int)
	for i, rec := range st.Attachments {
		current[rec.key()] = i
	}
	slotDelta := func(slot int, name string) {
		if delta.Slots[lowerProgArray] == nil {
			delta.Slots[lowerProgArray] = make(map[int]string)
		}
		delta.Slots[lowerProgArray][slot] = name
	}
	record := func(p compiler.ManifestProg) {
		st.Programs[p.Name] = progRecord{SHA256: p.SHA256, Tag: ls.tags[p.Name], TailCallSlot: p.TailCallSlot}
		delta.Programs[p.Name] = st.Programs[p.Name]
		if p.TailCallSlot != nil {
			if d.slotTags[lowerProgArray] == nil {
				d.slotTags[lowerProgArray] = make(map[int]string)
			}
			d.slotTags[lowerProgArray][*p.TailCallSlot] = ls.tags[p.Name]
			slotDelta(*p.TailCallSlot, p.Name)
		}
	}

	// Programs of running endpoints, unit by unit (see swapUnit).
	for _, u := range plan.units {
		for _, t := range u.tails {
			prog, done, err := ls.program(t.Name)
			if err != nil {
				return err
			}
			err = d.maps[lowerProgArray].Put(uint32(*t.TailCallSlot), prog)
			done()
			if err != nil {
				return fmt.Errorf("swapping %s into %s slot %d: %w", t.Name, lowerProgArray, *t.TailCallSlot, err)
			}
			change(lowerProgArray).Ops++
			record(t)
			res.Replaced = append(res.Replaced, t.Name)
		}
		if u.entry != "" {
			for _, p := range u.part.Programs {
				if p.Name == u.entry {
					record(p)
				}
			}
			for _, rec := range d.desiredAttachments(u.part) {
				if rec.Program != u.entry {
					continue
				}
				prog, release, err := ls.program(rec.Program)
				if err != nil {
					return err
				}
				err = d.attachOne(res, st, rec, prog, ls.tags[rec.Program], current)
				release()
				if err != nil {
					return err
				}
			}
		}
		for i, t := range u.tails {
			from := u.from[i]
			if from == *t.TailCallSlot {
				continue
			}
			if err := d.maps[lowerProgArray].Delete(uint32(from)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("emptying %s slot %d (was %s): %w", lowerProgArray, from, t.Name, err)
			}
			change(lowerProgArray).Ops++
			delete(d.slotTags[lowerProgArray], from)
			slotDelta(from, "")
		}
	}

	// Programs of endpoints added: tail-call slots, then attachments.
	for _, part := range plan.parts {
		for _, p := range part.Programs {
			if p.TailCallSlot == nil {
				continue
			}
			prog, done, err := ls.program(p.Name)
			if err != nil {
				return err
			}
			err = d.maps[lowerProgArray].Put(uint32(*p.TailCallSlot), prog)
			done()
			if err != nil {
				return fmt.Errorf("filling %s slot %d with %s: %w", lowerProgArray, *p.TailCallSlot, p.Name, err)
			}
			change(lowerProgArray).Ops++
		}
	}
	for _, part := range plan.parts {
		for _, p := range part.Programs {
			record(p)
		}
	}
	for _, part := range plan.parts {
		for _, rec := range d.desiredAttachments(part) {
			prog, release, err := ls.program(rec.Program)
			if err != nil {
				return err
			}
			err = d.attachOne(res, st, rec, prog, ls.tags[rec.Program], current)
			release()
			if err != nil {
				return err
			}
		}
	}

	// Deletions last: running programs found their entries until now.
	for _, name := range sortedKeys(dels) {
		ops, err := d.writer.remove(d.maps[name], dels[name])
		change(name).Ops += ops
		if err != nil {
			return fmt.Errorf("deleting from map %s: %w", name, err)
		}
	}
	res.SyncTime = time.Since(syncStart)

	// Record: the manifest and the event names.
	d.mergeManifest(plan)
	st.Maps[lowerProgArray] = mapRecord{Type: st.Maps[lowerProgArray].Type, Sync: st.Maps[lowerProgArray].Sync, Slots: d.manifestSlots(lowerProgArray)}
	named := &compiler.Manifest{Cookies: d.manifest.Cookies}
	if plan.cookies == nil {
		named.Cookies = nil
	}
	for _, part := range plan.replaced {
		named.Endpoints = append(named.Endpoints, part.Endpoints...)
	}
	d.events.extend(append(slices.Clone(plan.parts), named))
	for _, name := range sortedKeys(changes) {
		res.Maps = append(res.Maps, *changes[name])
	}
	st.Generation++
	res.Generation = st.Generation
	st.Source = res.Source
	return nil
}

// lowerProgArray is the name of the node's program array.
const lowerProgArray = "progs"

// maxJournal is how many incremental applies the journal holds before the
// whole state is written again.
const maxJournal = 64

// manifestMap returns the manifest entry of a map the plan uses.
func (plan *incrementalPlan) manifestMap(name string) compiler.ManifestMap {
	for _, part := range plan.parts {
		for _, mm := range part.Maps {
			if mm.Name == name {
				return mm
			}
		}
	}
	return compiler.ManifestMap{Name: name}
}

// partManifest is the plan's programs as one manifest, for error messages.
func (d *Daemon) partManifest(plan *incrementalPlan) *compiler.Manifest {
	m := &compiler.Manifest{Node: d.opts.Node}
	for _, part := range slices.Concat(plan.parts, plan.replaced) {
		m.Programs = append(m.Programs, part.Programs...)
	}
	return m
}

// mergeManifest adds the plan's programs, maps, cookies, endpoints and
// identities to the running manifest, whose maps stay sorted by name, and
// puts the replaced programs and the endpoints they belong to in place of
// the old ones.
func (d *Daemon) mergeManifest(plan *incrementalPlan) {
	man := d.manifest
	defer d.mergeReplaced(plan)
	for _, part := range plan.parts {
		man.Programs = append(man.Programs, part.Programs...)
		man.Cookies = append(man.Cookies, part.Cookies...)
		man.Endpoints = append(man.Endpoints, part.Endpoints...)
		man.Identities = part.Identities
		for _, mm := range part.Maps {
			i, ok := slices.BinarySearchFunc(man.Maps, mm.Name, func(m compiler.ManifestMap, name string) int { return strings.Compare(m.Name, name) })
			if !ok {
				man.Maps = slices.Insert(man.Maps, i, mm)
				continue
			}
			for s, prog := range mm.Slots {
				if prog == "" {
					continue
				}
				for len(man.Maps[i].Slots) <= s {
					man.Maps[i].Slots = append(man.Maps[i].Slots, "")
				}
				man.Maps[i].Slots[s] = prog
			}
		}
	}
}

// manifestSlots returns the running manifest's slots of program array name.
func (d *Daemon) manifestSlots(name string) []string {
	for _, mm := range d.manifest.Maps {
		if mm.Name == name {
			return mm.Slots
		}
	}
	return nil
}

// mergeReplaced puts the plan's replaced programs, their slots, and the
// references of the endpoints they belong to, in the running manifest in
// place of the old ones, and the plan's cookies in place of all cookies.
func (d *Daemon) mergeReplaced(plan *incrementalPlan) {
	man := d.manifest
	if plan.cookies != nil {
		man.Cookies = make([]compiler.ManifestCookie, len(plan.cookies))
		for i, c := range plan.cookies {
			man.Cookies[i] = compiler.ManifestCookie{Cookie: c, Position: c.Pos.String()}
		}
	}
	if len(plan.replaced) == 0 {
		return
	}
	progs := make(map[string]compiler.ManifestProg)
	refs := make(map[string]lower.EndpointRef)
	for _, part := range plan.replaced {
		for _, p := range part.Programs {
			progs[p.Name] = p
		}
		for _, r := range part.Endpoints {
			refs[r.ID] = r
		}
	}
	for i, p := range man.Programs {
		if np, ok := progs[p.Name]; ok {
			man.Programs[i] = np
		}
	}
	for i, r := range man.Endpoints {
		if nr, ok := refs[r.ID]; ok {
			man.Endpoints[i] = nr
		}
	}
	i, ok := slices.BinarySearchFunc(man.Maps, lowerProgArray, func(m compiler.ManifestMap, name string) int { return strings.Compare(m.Name, name) })
	if !ok {
		return
	}
	slots := man.Maps[i].Slots
	for _, u := range plan.units {
		for j, t := range u.tails {
			if from := u.from[j]; from < len(slots) && slots[from] == t.Name {
				slots[from] = ""
			}
		}
	}
	for _, u := range plan.units {
		for _, t := range u.tails {
			for len(slots) <= *t.TailCallSlot {
				slots = append(slots, "")
			}
			slots[*t.TailCallSlot] = t.Name
		}
	}
	man.Maps[i].Slots = slots
}
