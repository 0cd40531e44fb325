//go:build linux

package runtime

// The incremental path. After a full apply of a configuration the daemon
// keeps the configuration's model and a lower.Incremental for its node.
// When the next configuration differs from it only by endpoints added, the
// daemon computes the change instead of compiling the node again:
//
//  1. compute: which endpoints were added (the rest of the model must be
//     equal), then, for each, lower.Incremental.AddEndpoint — the map
//     entries that change and, for an endpoint on this node, its programs;
//  2. compile those programs only (compiler.CompilePartial: passes, code
//     generation, static verifier);
//  3. load them and create the new endpoint's policy map; a verifier error
//     stops here with nothing changed;
//  4. fill and pin the new maps, write the added and changed entries into
//     the running maps, fill the new programs' tail-call slots, attach the
//     new entry programs, and only then delete entries no longer wanted;
//  5. record it all (state, manifest, event names) as a full apply would.
//
// Endpoint indexes, tail-call slots and default-deny cookies depend on the
// endpoint alone (compiler/lower/slots.go), so no running program changes.
// Anything else — a removed or changed endpoint, a changed policy, node or
// setting, an identity or index that would move — takes the full path.

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

// addedEndpoints compares the running model cur with next: ok when next is
// cur with endpoints added, which it returns in order. Positions are
// ignored except in policies and settings, whose positions the manifest's
// cookies name.
func addedEndpoints(cur, next *model.Config) (added []*model.Endpoint, ok bool) {
	if !sameCluster(&cur.Cluster, &next.Cluster) ||
		!slices.EqualFunc(cur.Nodes, next.Nodes, sameNode) ||
		!slices.EqualFunc(cur.Namespaces, next.Namespaces, func(a, b *model.Namespace) bool {
			return a.Name == b.Name && maps.Equal(a.Labels, b.Labels)
		}) ||
		len(cur.Services)+len(next.Services) > 0 || cur.NAT != nil || next.NAT != nil ||
		!reflect.DeepEqual(cur.Settings, next.Settings) ||
		!slices.EqualFunc(cur.Policies, next.Policies, samePolicy) {
		return nil, false
	}
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

// samePolicy reports whether two policies are equal, positions included.
// It is reflect.DeepEqual written out, ten times faster on a thousand
// policies; TestModelComparisons holds it to the model's fields.
func samePolicy(a, b *model.Policy) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.ClusterWide == b.ClusterWide &&
		sameSelector(a.EndpointSelector, b.EndpointSelector) && sameSelector(a.NodeSelector, b.NodeSelector) &&
		slices.EqualFunc(a.Ingress, b.Ingress, sameRule) && slices.EqualFunc(a.Egress, b.Egress, sameRule) &&
		slices.EqualFunc(a.IngressDeny, b.IngressDeny, sameRule) && slices.EqualFunc(a.EgressDeny, b.EgressDeny, sameRule) &&
		a.DefaultDenyIngress == b.DefaultDenyIngress && a.DefaultDenyEgress == b.DefaultDenyEgress &&
		a.Audit == b.Audit && a.Description == b.Description && a.FromKubernetes == b.FromKubernetes && a.Pos == b.Pos
}

func sameSelector(a, b *model.Selector) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.Equal(a.MatchLabels, b.MatchLabels) && (a.MatchLabels == nil) == (b.MatchLabels == nil) &&
		slices.EqualFunc(a.MatchExpressions, b.MatchExpressions, func(x, y model.Expression) bool {
			return x.Key == y.Key && x.Operator == y.Operator && slices.Equal(x.Values, y.Values) && x.Pos == y.Pos
		}) &&
		sameSelector(a.Namespaces, b.Namespaces) && a.Pos == b.Pos
}

func sameRule(a, b *model.Rule) bool {
	return slices.EqualFunc(a.Endpoints, b.Endpoints, sameSelector) &&
		slices.EqualFunc(a.CIDRs, b.CIDRs, func(x, y *model.CIDRPeer) bool {
			return x.CIDR == y.CIDR && slices.Equal(x.Except, y.Except) && x.Pos == y.Pos
		}) &&
		slices.Equal(a.Entities, b.Entities) && a.HasPeers == b.HasPeers &&
		slices.EqualFunc(a.Ports, b.Ports, func(x, y *model.PortRule) bool { return *x == *y }) &&
		slices.EqualFunc(a.ICMPs, b.ICMPs, func(x, y *model.ICMPRule) bool {
			return x.Family == y.Family && x.Type == y.Type && (x.Code == nil) == (y.Code == nil) &&
				(x.Code == nil || *x.Code == *y.Code) && x.Pos == y.Pos
		}) &&
		(a.Endpoints == nil) == (b.Endpoints == nil) && (a.CIDRs == nil) == (b.CIDRs == nil) &&
		(a.Entities == nil) == (b.Entities == nil) && a.Pos == b.Pos
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
	added, same := addedEndpoints(inc.cfg, cfg)
	if !same {
		return nil, false, nil
	}
	res.ComputeTime = time.Since(start)
	if len(added) == 0 {
		// The configuration is the running one (a file touched, or
		// rewritten with the same meaning).
		res.Unchanged = true
		res.Generation = d.state.Generation
		res.TotalTime = configTime + time.Since(start)
		return res, true, nil
	}
	plan, err := d.planIncremental(inc, added, res)
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

// planIncremental computes and compiles the change. Any error means the
// full path; the Incremental has then changed and must be dropped, except
// after errUntouched.
func (d *Daemon) planIncremental(inc *incState, added []*model.Endpoint, res *ApplyResult) (*incrementalPlan, error) {
	computeStart := time.Now()
	plan := &incrementalPlan{
		cfg:     inc.cfg,
		irMaps:  make(map[string]*ir.Map),
		changes: make(map[string]map[string]entryChange),
		created: make(map[string]bool),
	}
	var parts []*lower.Result
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
		if delta.Programs != nil {
			parts = append(parts, delta.Programs)
			for _, m := range delta.Programs.Module.Maps {
				plan.irMaps[m.Name] = m
			}
		}
		for _, md := range delta.Maps {
			if err := d.planMapDelta(plan, md); err != nil {
				return nil, err
			}
		}
	}
	res.ComputeTime += time.Since(computeStart)

	compileStart := time.Now()
	for _, part := range parts {
		obj, man, err := compiler.CompilePartial(inc.node, part)
		if err != nil {
			return nil, err
		}
		plan.objs = append(plan.objs, obj)
		plan.parts = append(plan.parts, man)
		plan.programs = append(plan.programs, obj.Programs...)
	}
	res.CompileTime = time.Since(compileStart)
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
// change, the program array can take their slots, and no program or map
// name is taken.
func (d *Daemon) checkPlan(plan *incrementalPlan) error {
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
		if m.Type == ir.MapProgArray {
			old := d.state.Maps[name].Slots
			for i, prog := range m.Slots {
				if prog != "" && i < len(old) && old[i] != "" {
					return fmt.Errorf("%w: slot %d of %s holds %s", errFullPath, i, name, old[i])
				}
			}
		}
	}
	for _, p := range plan.programs {
		if _, ok := d.state.Programs[p.Name]; ok {
			return fmt.Errorf("%w: program %s runs already", errFullPath, p.Name)
		}
	}
	for name := range plan.created {
		if plan.irMaps[name] == nil {
			return fmt.Errorf("%w: map %s is created without a layout", errFullPath, name)
		}
	}
	return nil
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

	// Programs: tail-call slots, then attachments.
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
			st.Programs[p.Name] = progRecord{SHA256: p.SHA256, Tag: ls.tags[p.Name], TailCallSlot: p.TailCallSlot}
			delta.Programs[p.Name] = st.Programs[p.Name]
			if p.TailCallSlot != nil {
				if d.slotTags[lowerProgArray] == nil {
					d.slotTags[lowerProgArray] = make(map[int]string)
				}
				d.slotTags[lowerProgArray][*p.TailCallSlot] = ls.tags[p.Name]
				if delta.Slots[lowerProgArray] == nil {
					delta.Slots[lowerProgArray] = make(map[int]string)
				}
				delta.Slots[lowerProgArray][*p.TailCallSlot] = p.Name
			}
		}
	}
	current := make(map[string]int)
	for i, rec := range st.Attachments {
		current[rec.key()] = i
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
	d.events.extend(plan.parts)
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
	for _, part := range plan.parts {
		m.Programs = append(m.Programs, part.Programs...)
	}
	return m
}

// mergeManifest adds the plan's programs, maps, cookies, endpoints and
// identities to the running manifest, whose maps stay sorted by name.
func (d *Daemon) mergeManifest(plan *incrementalPlan) {
	man := d.manifest
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
