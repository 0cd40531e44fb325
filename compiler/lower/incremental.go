package lower

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Incremental keeps what lowering computed for one node's map contents —
// identities, resolved selectors, and the ipcache and policy map entries —
// so that adding an endpoint yields only the map entries that change,
// without lowering the node again.
//
// When the added endpoint runs on the node it also lowers the endpoint's
// programs (Delta.Programs). Endpoint indexes, tail-call slots and
// default-deny cookies depend on the endpoint alone (slots.go), so the
// node's other programs do not change.
type Incremental struct {
	l *lowering
	// ipcache is the identity of every ipcache prefix.
	ipcache map[netip.Prefix]uint32
	// policy holds the entries of every policy map, by map name, and
	// policyMap the map name of each endpoint that has one.
	policy    map[string][]Entry
	policyMap map[*model.Endpoint]string
	// addrs counts the endpoints that have each address.
	addrs map[netip.Addr]int
	// base is the identifier of each local endpoint, the stem of its map
	// and program names.
	base map[*model.Endpoint]string
	// hostMap is the host's policy map, when the host firewall has one.
	hostMap string
	// byIndex is the local endpoint with each index.
	byIndex map[uint32]*model.Endpoint
	// sig is what the programs of each local endpoint (and of the host)
	// depend on besides the endpoint and its index.
	sig map[*model.Endpoint]endpointSig
	// cidrs is the set of prefixes the policies name, which number the
	// CIDR identities.
	cidrs map[netip.Prefix]bool
}

// endpointSig is what an endpoint's programs depend on besides the
// endpoint and its index, per direction: whether policy enforces it,
// whether its default deny only audits, and where enforcement came from.
// The position is not in the bytecode (it positions the verdict
// instructions in the listing and names the default deny's cookie).
type endpointSig struct {
	enforced, audit [2]bool
	pos             [2]source.Pos
}

// tracked reports whether the endpoint has a policy map and policy
// programs, rather than open programs.
func (s endpointSig) tracked() bool { return s.enforced[ingress] || s.enforced[egress] }

// sameCode reports whether programs lowered with s and t are the same
// bytecode.
func (s endpointSig) sameCode(t endpointSig) bool {
	return s.enforced == t.enforced && s.audit == t.audit
}

// ErrNeedsFullCompile is returned by Incremental.AddEndpoint and
// ChangePolicies when the change cannot be applied incrementally — an
// identity number would move, the endpoint's address is already taken, its
// names would shift other endpoints' names, the default-deny cookies would
// move, or an endpoint gains or loses its policy programs. The caller then
// compiles the node again.
var ErrNeedsFullCompile = errors.New("the change needs a full compile")

// Delta is what changes in a node's map contents and programs.
type Delta struct {
	Maps []MapDelta // sorted by map name; only maps with changes
	// ProgramsChanged is set when the node gains or changes programs:
	// those of an endpoint added to the node, which Programs holds, or
	// those of running endpoints, which Replaced holds.
	ProgramsChanged bool
	// Programs is, for an endpoint added to the node, its lowering as
	// Node's Result would have it, restricted to that endpoint: its
	// programs, every map they use (with the program array's slots of its
	// programs only), its attachments, its default-deny cookies and its
	// endpoint reference. Contents is empty: the new endpoint's policy map
	// is in Maps, Created. Identities lists every identity of the node.
	Programs *Result
	// Replaced is, when programs of endpoints already on the node change,
	// their lowering as Programs has an added endpoint's: the same
	// program and map names, new code, and for an endpoint that moved to
	// another index (to make room for an added endpoint: slots.go) new
	// tail-call slots, default-deny cookies and endpoint reference. An
	// endpoint's programs change when it moves, or when a policy change
	// turns its enforcement or audit in a direction on or off.
	Replaced *Result
	// Cookies, when not nil, is the node's complete list of cookies after
	// the change, as Node's Result has them (rule cookies are renumbered
	// when rules are added or removed before them, and positions move
	// when the policy files change).
	Cookies []Cookie
}

// MapDelta is what changes in one map. Created is set when the map is new
// (its entries are all in Added).
type MapDelta struct {
	Map     string
	Created bool
	Added   []Entry // sorted by key
	Updated []Entry // the new values, sorted by key
	Deleted []Entry // the old entries, sorted by key
}

// Ops is the number of map operations that apply d.
func (d *Delta) Ops() int {
	n := 0
	for _, m := range d.Maps {
		n += len(m.Added) + len(m.Updated) + len(m.Deleted)
	}
	return n
}

// NewIncremental computes the map contents of node as Node does, and keeps
// what AddEndpoint needs. cfg must have passed Supported, and it must not be
// modified afterwards except through AddEndpoint.
func NewIncremental(cfg *model.Config, node *model.Node) (*Incremental, error) {
	l := &lowering{cfg: cfg, node: node}
	for _, ep := range cfg.Endpoints {
		if ep.Node == node.Name {
			l.endpoints = append(l.endpoints, ep)
		}
	}
	l.ids = allocateIdentities(cfg)
	l.sel = newSelectorCache(l.ids)
	l.cookieOf, l.cookies = ruleCookies(cfg)
	l.selectPolicies()
	inc := &Incremental{
		l:         l,
		ipcache:   l.ids.ipcachePrefixes(cfg, node),
		policy:    make(map[string][]Entry),
		policyMap: make(map[*model.Endpoint]string),
		addrs:     make(map[netip.Addr]int),
		base:      make(map[*model.Endpoint]string),
		byIndex:   make(map[uint32]*model.Endpoint),
		sig:       make(map[*model.Endpoint]endpointSig),
		cidrs:     policyCIDRs(cfg),
	}
	if err := l.numberEndpoints(); err != nil {
		return nil, err
	}
	for ep, n := range l.index {
		inc.byIndex[n] = ep
	}
	for _, ep := range cfg.Endpoints {
		for _, a := range ep.Addresses {
			inc.addrs[a]++
		}
	}
	// Names as build gives them: every local endpoint's identifier, in
	// endpoint order, before any other name.
	for _, ep := range l.endpoints {
		inc.base[ep] = l.identifier(ep.Namespace + "_" + ep.Name)
	}
	for _, ep := range l.endpoints {
		if err := inc.lowerEndpoint(ep); err != nil {
			return nil, err
		}
	}
	if err := inc.lowerHost(); err != nil {
		return nil, err
	}
	return inc, nil
}

// Contents returns the map contents as Node's Result has them (ipcache and
// policy maps; sorted by map name, entries by key).
func (inc *Incremental) Contents() []MapContents {
	var out []MapContents
	for name, entries := range inc.policy {
		out = append(out, MapContents{Map: name, Entries: entries})
	}
	out = append(out, ipcacheContents(inc.ipcache)...)
	slices.SortFunc(out, func(a, b MapContents) int { return strings.Compare(a.Map, b.Map) })
	return out
}

// policyEntries computes the policy map entries of local endpoint ep, and
// what its programs depend on (whether it needs a policy map at all: it is
// enforced in some direction), as build does.
func (inc *Incremental) policyEntries(ep *model.Endpoint) ([]Entry, endpointSig, error) {
	l := inc.l
	var entries []Entry
	var sig endpointSig
	for _, dir := range []direction{ingress, egress} {
		p := l.computePolicy(ep, dir)
		sig.enforced[dir], sig.audit[dir], sig.pos[dir] = p.enforced, p.audit, p.pos
		entries = append(entries, p.entries...)
	}
	if sig.tracked() && len(entries) > int(l.mapSize("policy", defaultPolicySize)) {
		return nil, sig, ErrNeedsFullCompile // Node reports the error
	}
	return entries, sig, nil
}

func (inc *Incremental) lowerEndpoint(ep *model.Endpoint) error {
	entries, sig, err := inc.policyEntries(ep)
	if err != nil {
		return err
	}
	inc.sig[ep] = sig
	if sig.tracked() {
		name := "pol_" + inc.base[ep]
		inc.policy[name] = entries
		inc.policyMap[ep] = name
	}
	return nil
}

// AddEndpoint records that cfg, the configuration the Incremental was made
// from with endpoint ep added, is now current, and returns the changes to
// the node's map contents: the ipcache entries of ep's addresses, a policy
// map for ep when it runs on the node, and the policy entries of the
// node's endpoints whose rules select ep's identity when that identity is
// new. The result equals the difference between Node's contents for the
// two configurations. On ErrNeedsFullCompile nothing has changed.
func (inc *Incremental) AddEndpoint(cfg *model.Config, ep *model.Endpoint) (*Delta, error) {
	l := inc.l
	for _, a := range ep.Addresses {
		if inc.addrs[a] > 0 {
			return nil, ErrNeedsFullCompile // which endpoint wins depends on order
		}
	}
	local := ep.Node == l.node.Name
	base := ""
	var index uint32
	var moved map[*model.Endpoint]uint32 // endpoints that make room for ep
	if local {
		base = sanitizeIdentifier(ep.Namespace + "_" + ep.Name)
		if inc.nameTaken(base) {
			return nil, ErrNeedsFullCompile
		}
		var ok bool
		if index, ok = inc.freeIndex(ep.ID()); !ok {
			var err error
			if index, moved, err = inc.renumber(ep); err != nil {
				return nil, err
			}
		}
	}
	key := identityKey(ep)
	id := l.ids.bySet[key]
	newID := id == nil
	if newID {
		n, ok := inc.freeSlot(key)
		if !ok {
			return nil, ErrNeedsFullCompile
		}
		id = inc.addIdentity(cfg, ep, key, n)
	}

	// From here on the change is applied.
	l.cfg = cfg
	id.endpoints = append(id.endpoints, ep)
	slices.SortFunc(id.endpoints, func(a, b *model.Endpoint) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	l.ids.byEndpoint[ep] = id
	for _, a := range ep.Addresses {
		inc.addrs[a]++
	}

	d := &Delta{ProgramsChanged: local}
	// An endpoint's addresses are whole: they go in the ipcache hash.
	ipc := MapDelta{Map: ipcacheMap}
	for _, a := range ep.Addresses {
		p := netip.PrefixFrom(a, a.BitLen())
		_, e := ipcacheEntry(p, id.id)
		if old, ok := inc.ipcache[p]; !ok {
			ipc.Added = append(ipc.Added, e)
		} else if old != id.id {
			ipc.Updated = append(ipc.Updated, e)
		}
		inc.ipcache[p] = id.id
	}
	var deltas []MapDelta
	if len(ipc.Added)+len(ipc.Updated) > 0 {
		deltas = append(deltas, ipc)
	}

	// The node's endpoints whose entries may change: those selected by a
	// policy with a rule whose peers now include the new identity, or
	// with an egress rule on a named port (resolved on each peer
	// endpoint, so a new endpoint of an existing identity counts).
	var affected []*model.Endpoint
	if newID || len(ep.NamedPorts) > 0 {
		touched := inc.touchedPolicies(id, newID)
		memo := make(map[*identity]bool)
		for _, x := range l.endpoints {
			subject := l.ids.byEndpoint[x]
			hit, ok := memo[subject]
			if !ok {
				hit = slices.ContainsFunc(l.selecting[subject], func(p *model.Policy) bool { return touched[p] })
				memo[subject] = hit
			}
			if hit {
				affected = append(affected, x)
			}
		}
		for pr := range l.sel.rules {
			if touched[pr.p] {
				delete(l.sel.rules, pr) // its peers may now include id
			}
		}
	}
	for _, x := range affected {
		name, ok := inc.policyMap[x]
		if !ok {
			continue // open in both directions: no rule can select anything
		}
		entries, _, err := inc.policyEntries(x)
		if err != nil {
			return nil, err
		}
		if md := diffEntryLists(name, inc.policy[name], entries); md != nil {
			deltas = append(deltas, *md)
		}
		inc.policy[name] = entries
	}
	if newID || len(ep.NamedPorts) > 0 {
		if err := inc.updateHost(&deltas); err != nil {
			return nil, err
		}
	}
	if local {
		for x := range moved {
			delete(inc.byIndex, l.index[x])
		}
		for x, n := range moved {
			l.index[x] = n
			inc.byIndex[n] = x
		}
		l.endpoints = append(l.endpoints, ep)
		l.index[ep] = index
		inc.byIndex[index] = ep
		inc.base[ep] = l.identifier(ep.Namespace + "_" + ep.Name)
		if _, ok := l.selecting[id]; !ok {
			l.selecting[id] = inc.selectingPolicies(id)
		}
		if err := inc.lowerEndpoint(ep); err != nil {
			return nil, err
		}
		if name, ok := inc.policyMap[ep]; ok {
			deltas = append(deltas, MapDelta{Map: name, Created: true, Added: inc.policy[name]})
		}
		progs, err := inc.endpointPrograms([]*model.Endpoint{ep})
		if err != nil {
			return nil, err
		}
		d.Programs = progs
		if len(moved) > 0 {
			eps := slices.Collect(maps.Keys(moved))
			slices.SortFunc(eps, func(a, b *model.Endpoint) int { return strings.Compare(a.ID(), b.ID()) })
			if d.Replaced, err = inc.endpointPrograms(eps); err != nil {
				return nil, err
			}
			d.Cookies = inc.cookies()
		}
	}
	slices.SortFunc(deltas, func(a, b MapDelta) int { return strings.Compare(a.Map, b.Map) })
	d.Maps = deltas
	return d, nil
}

// endpointPrograms lowers the programs of local endpoints eps, already
// numbered, as build does for the whole node. Their identifiers must be
// the ones build gives them without a suffix (nameTaken, renumber).
func (inc *Incremental) endpointPrograms(eps []*model.Endpoint) (*Result, error) {
	l := inc.l
	sub := &lowering{
		cfg: l.cfg, node: l.node, endpoints: eps,
		ids: l.ids, sel: l.sel, selecting: l.selecting, cookieOf: l.cookieOf,
		index: l.index, numRuleCookies: l.numRuleCookies, programsOnly: true,
	}
	if err := sub.build(); err != nil {
		return nil, err
	}
	res := sub.result()
	// build also lowers the node's own programs (the host firewall, the
	// XDP prefilter), which do not change: keep the endpoints'.
	ids := make(map[string]bool)
	for _, ep := range eps {
		ids[ep.ID()] = true
	}
	mine := make(map[string]bool)
	var attach []Attachment
	for _, a := range res.Attach {
		if ids[a.Endpoint] {
			mine[a.Program] = true
			attach = append(attach, a)
		}
	}
	res.Cookies = slices.DeleteFunc(res.Cookies, func(c Cookie) bool { return !ids[c.Endpoint] })
	res.Endpoints = slices.DeleteFunc(res.Endpoints, func(r EndpointRef) bool { return !ids[r.ID] })
	if l.host != nil {
		// The host's slots are not the endpoints'.
		for _, m := range res.Module.Maps {
			for _, dir := range []direction{ingress, egress} {
				for _, fam := range []int{familyIPv4, familyIPv6} {
					if s := hostTailCallSlot(dir, fam); s < int64(len(m.Slots)) {
						m.Slots[s] = ""
					}
				}
			}
		}
	}
	for _, m := range res.Module.Maps {
		for _, prog := range m.Slots {
			if prog != "" {
				mine[prog] = true
			}
		}
	}
	res.Attach = attach
	res.Module.Programs = slices.DeleteFunc(res.Module.Programs, func(p *ir.Program) bool { return !mine[p.Name] })
	res.Contents = nil
	return res, nil
}

// freeIndex returns the index endpointIndexes gives a new local endpoint
// with ID id, or false when adding it would renumber another endpoint: as
// freeSlot does for identities, the new endpoint skips the indexes of the
// endpoints before it in (hash, ID) order and stands only if it lands on a
// free index without passing one a later endpoint holds.
func (inc *Incremental) freeIndex(id string) (uint32, bool) {
	if len(inc.l.endpoints)+1 >= EndpointIndexes {
		return 0, false
	}
	hash := endpointIndexHash(id)
	n := hash
	for {
		x := inc.byIndex[n]
		if x == nil {
			return n, true
		}
		xid := x.ID()
		if xh := endpointIndexHash(xid); xh > hash || xh == hash && xid > id {
			return 0, false
		}
		n = nextEndpointIndex(n)
	}
}

// renumber returns the index the canonical numbering gives local endpoint
// ep when it joins the node's endpoints, and the endpoints whose index it
// moves (with their new index): ep's probe landed on an index that an
// endpoint after it in (hash, ID) order had probed to. It changes nothing.
// A moved endpoint's programs are lowered again (endpointPrograms), which
// needs its identifier to be the one build gives it without a suffix.
func (inc *Incremental) renumber(ep *model.Endpoint) (uint32, map[*model.Endpoint]uint32, error) {
	l := inc.l
	if len(l.endpoints)+1 >= EndpointIndexes {
		return 0, nil, ErrNeedsFullCompile // Node reports the error
	}
	idx := endpointIndexes(append(slices.Clip(l.endpoints), ep))
	moved := make(map[*model.Endpoint]uint32)
	for _, x := range l.endpoints {
		if n := idx[x]; n != l.index[x] {
			if inc.base[x] != sanitizeIdentifier(x.Namespace+"_"+x.Name) {
				return 0, nil, ErrNeedsFullCompile
			}
			moved[x] = n
		}
	}
	return idx[ep], moved, nil
}

// cookies returns the node's cookies as Node's Result has them: the rule
// cookies, then the default denies of the local endpoints and of the host.
func (inc *Incremental) cookies() []Cookie {
	l := inc.l
	out := slices.Clone(l.cookies[:l.numRuleCookies])
	add := func(ep *model.Endpoint, id func(direction) uint32, name string) {
		sig := inc.sig[ep]
		if !sig.tracked() {
			return
		}
		for _, dir := range []direction{ingress, egress} {
			if sig.enforced[dir] {
				out = append(out, Cookie{
					ID: id(dir), Kind: "default-deny", Direction: dir.String(), Rule: -1,
					Endpoint: name, Audit: sig.audit[dir], Pos: sig.pos[dir],
				})
			}
		}
	}
	for _, ep := range l.endpoints {
		add(ep, func(dir direction) uint32 { return l.defaultDenyCookie(ep, dir) }, ep.ID())
	}
	if l.host != nil {
		add(l.host, l.hostDefaultDenyCookie, hostID(l.node))
	}
	return out
}

// touchedPolicies returns the policies whose entries may change when
// endpoint identity id gains an endpoint (newID: id itself is new): those
// with a rule that may name id, and those with an egress rule on a named
// port, which is resolved on each peer endpoint.
func (inc *Incremental) touchedPolicies(id *identity, newID bool) map[*model.Policy]bool {
	touched := make(map[*model.Policy]bool)
	namesID := func(p *model.Policy, rules []*model.Rule) bool {
		for _, r := range rules {
			if newID && ruleMayNameIdentity(p, r, id) {
				return true
			}
		}
		return false
	}
	namedPort := func(rules []*model.Rule) bool {
		for _, r := range rules {
			for _, pr := range r.Ports {
				if pr.Name != "" {
					return true
				}
			}
		}
		return false
	}
	for _, p := range inc.l.cfg.Policies {
		if namesID(p, p.Ingress) || namesID(p, p.IngressDeny) || namesID(p, p.Egress) || namesID(p, p.EgressDeny) ||
			namedPort(p.Egress) || namedPort(p.EgressDeny) {
			touched[p] = true
		}
	}
	return touched
}

// ruleMayNameIdentity reports whether rule r of policy p has a peer that
// selects endpoint identity id: an endpoint selector that matches it, or
// the cluster entity.
func ruleMayNameIdentity(p *model.Policy, r *model.Rule, id *identity) bool {
	for _, s := range r.Endpoints {
		scope := ""
		if !p.ClusterWide && s.Namespaces == nil {
			scope = p.Namespace
		}
		if matchesIdentity(s, scope, id) {
			return true
		}
	}
	for _, e := range r.Entities {
		if e.Entity == model.EntityCluster {
			return true
		}
	}
	return false
}

// selectingPolicies lists the policies that select id, in policy order (as
// selectPolicies does).
func (inc *Incremental) selectingPolicies(id *identity) []*model.Policy {
	var ps []*model.Policy
	for _, p := range inc.l.cfg.Policies {
		if selectsIdentity(p, id) {
			ps = append(ps, p)
		}
	}
	return ps
}

// freeSlot returns the number allocateIdentities gives a new label set
// with canonical key, or false when adding it would renumber an existing
// identity. Label sets are numbered in order of (hash slot, key), each
// taking the first free number from its slot; the new set skips the
// numbers of the sets before it, and the result stands only if no later set
// holds the number it lands on — then no later set's probing changes.
func (inc *Incremental) freeSlot(key string) (uint32, bool) {
	ids := inc.l.ids
	slot := hashSlot(key)
	before := func(x *identity) bool {
		xs := hashSlot(x.setKey)
		return xs < slot || xs == slot && x.setKey < key
	}
	n := slot
	for {
		x := ids.byID[n]
		if x == nil {
			return n, true
		}
		if x.class != classEndpoint || !before(x) {
			return 0, false
		}
		n++
		if n == IdentityCIDRBase {
			n = IdentityEndpointBase
		}
	}
}

// addIdentity creates the endpoint identity of ep's label set with number
// n and adds it to the identities and the selector cache.
func (inc *Incremental) addIdentity(cfg *model.Config, ep *model.Endpoint, key string, n uint32) *identity {
	l := inc.l
	var nl map[string]string
	for _, ns := range cfg.Namespaces {
		if ns.Name == ep.Namespace {
			nl = ns.Labels
		}
	}
	if nl == nil {
		nl = map[string]string{"kubernetes.io/metadata.name": ep.Namespace}
	}
	id := &identity{id: n, class: classEndpoint, namespace: ep.Namespace, setKey: key, labels: ep.Labels, nsLabels: nl, name: "endpoint:" + key}
	ids := l.ids
	ids.bySet[key] = id
	ids.byID[n] = id
	i, _ := slices.BinarySearchFunc(ids.all, n, func(x *identity, n uint32) int { return cmp.Compare(x.id, n) })
	ids.all = slices.Insert(ids.all, i, id)
	l.sel.addEndpointIdentity(id)
	return id
}

// nameTaken reports whether a local endpoint whose identifier is base
// could make build name any endpoint differently: base is already a name,
// or is another name's form with a numeric suffix.
func (inc *Incremental) nameTaken(base string) bool {
	if inc.l.names[base] {
		return true
	}
	if i := strings.LastIndexByte(base, '_'); i >= 0 {
		if _, err := strconv.Atoi(base[i+1:]); err == nil && inc.l.names[base[:i]] {
			return true
		}
	}
	return false
}

// sanitizeIdentifier is identifier's mapping of s to a C identifier,
// before it is made unique.
func sanitizeIdentifier(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// diffEntryLists returns what turns before into after in map name, or nil
// when they are equal. A policy map's entries are sorted by key within
// each direction, ingress first, so they are sorted here as a whole.
func diffEntryLists(name string, before, after []Entry) *MapDelta {
	byKey := func(a, b Entry) int { return slices.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(before, byKey) {
		before = slices.SortedFunc(slices.Values(before), byKey)
	}
	if !slices.IsSortedFunc(after, byKey) {
		after = slices.SortedFunc(slices.Values(after), byKey)
	}
	md := &MapDelta{Map: name}
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		var c int
		switch {
		case i == len(before):
			c = 1
		case j == len(after):
			c = -1
		default:
			c = slices.Compare(before[i].Key, after[j].Key)
		}
		switch {
		case c < 0:
			md.Deleted = append(md.Deleted, before[i])
			i++
		case c > 0:
			md.Added = append(md.Added, after[j])
			j++
		default:
			if !slices.Equal(before[i].Value, after[j].Value) {
				md.Updated = append(md.Updated, after[j])
			}
			i++
			j++
		}
	}
	if len(md.Added)+len(md.Updated)+len(md.Deleted) == 0 {
		return nil
	}
	return md
}
