package lower

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Stable numbering of a node's endpoints.
//
// Three numbers derived from an endpoint are compiled into its programs as
// constants: its index (which events carry and the manifest's endpoint list
// maps back), the tail-call slot of each of its per-family programs, and the
// cookie of each of its default denies. They are derived from the endpoint's
// namespace/name, as identities are derived from label sets, and not from its
// position among the node's endpoints: adding or removing an endpoint then
// leaves every other endpoint's programs byte-identical, so a runtime loads
// only the programs of the endpoint that changed.
//
// An index is a hash of "namespace/name" into [1, EndpointIndexes). Two
// endpoints that hash to the same index are resolved by probing upwards (from
// EndpointIndexes-1 back to 1) in the order of (hash, namespace/name), so the
// numbering is a function of the set of endpoints, whatever their order.
// Adding an endpoint renumbers another only when the new endpoint's probe
// lands on an index a later endpoint in that order had probed to; with the
// index space a third full that is one addition in five.
// Incremental.AddEndpoint then lowers the moved endpoint's programs again
// (Delta.Replaced), and a runtime swaps them into their new slots before
// the new endpoint takes the old ones. The numbering stays a function of
// the set of endpoints, so a full compile agrees with what runs.

// EndpointIndexes is the size of the endpoint index space: a node runs at
// most EndpointIndexes-1 endpoints (index 0 means "no endpoint" in events).
const EndpointIndexes = 1 << 14

// The kinds of per-endpoint programs that have a tail-call slot: kind =
// direction*2 + family. Family 1 (IPv6) is reserved for the IPv6 programs.
const (
	familyIPv4    = 0
	familyIPv6    = 1
	slotsPerIndex = 4
)

// ProgArraySize is the number of entries of a node's program array: one slot
// of each kind for every endpoint index. It does not depend on the node's
// endpoints, so the array's layout never changes and a runtime keeps it.
const ProgArraySize = EndpointIndexes * slotsPerIndex

// endpointIndexHash is the preferred index of the endpoint with ID id
// (namespace/name).
func endpointIndexHash(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return 1 + h.Sum32()%(EndpointIndexes-1)
}

// nextEndpointIndex is the index probed after n.
func nextEndpointIndex(n uint32) uint32 {
	if n == EndpointIndexes-1 {
		return 1
	}
	return n + 1
}

// endpointIndexes numbers eps (see the comment at the top of this file).
func endpointIndexes(eps []*model.Endpoint) map[*model.Endpoint]uint32 {
	type hashed struct {
		ep   *model.Endpoint
		id   string
		hash uint32
	}
	order := make([]hashed, len(eps))
	for i, ep := range eps {
		id := ep.ID()
		order[i] = hashed{ep, id, endpointIndexHash(id)}
	}
	slices.SortFunc(order, func(a, b hashed) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), strings.Compare(a.id, b.id))
	})
	taken := make(map[uint32]bool, len(eps))
	out := make(map[*model.Endpoint]uint32, len(eps))
	for _, h := range order {
		n := h.hash
		for taken[n] {
			n = nextEndpointIndex(n)
		}
		taken[n] = true
		out[h.ep] = n
	}
	return out
}

// numberEndpoints gives the node's endpoints their indexes. A node with more
// endpoints than indexes is an error at the node.
func (l *lowering) numberEndpoints() error {
	if len(l.endpoints) >= EndpointIndexes {
		return source.Errorf(l.node.Pos, "node %s runs %d endpoints, more than the %d a node can number; spread them over more nodes", l.node.Name, len(l.endpoints), EndpointIndexes-1)
	}
	if l.index == nil {
		l.index = endpointIndexes(l.endpoints)
		// build appends the default denies to the rule cookies.
		l.numRuleCookies = uint32(len(l.cookies))
	}
	return nil
}

// tailCallSlot is the program array slot of the program of endpoint ep for
// direction dir and address family family: index*4 + dir*2 + family.
func (l *lowering) tailCallSlot(ep *model.Endpoint, dir direction, family int) int64 {
	return int64(l.index[ep])*slotsPerIndex + int64(dir)*2 + int64(family)
}

// hostTailCallSlot is the program array slot of the host's program for
// direction dir and address family family. The host has index 0, which no
// endpoint has.
func hostTailCallSlot(dir direction, family int) int64 {
	return int64(dir)*2 + int64(family)
}

// setSlot records that slot holds program name. l.slots grows to the
// highest slot used: a program array is sparse, and its Slots list names ""
// for every empty slot.
func (l *lowering) setSlot(slot int64, name string) {
	for int64(len(l.slots)) <= slot {
		l.slots = append(l.slots, "")
	}
	l.slots[slot] = name
}

// Rule cookies are 1..R, in policy order (ruleCookies): the lowest cookie
// among matching rules is the first rule, which is what a verdict reports.
// Inserting a rule therefore renumbers the rules after it — their policy
// map entries change, as entries do. The programs do not depend on R: the
// default denies start after a rule cookie space of ruleCookieSpace(R)
// cookies, a power of two of at least minRuleCookieSpace, and rule_stats has
// that many entries for rules. Only a change of R across a power of two
// moves the default denies (and so every program's constants) and resizes
// rule_stats.
const minRuleCookieSpace = 1024

// ruleCookieSpace is the number of cookies reserved for rules when there
// are n rules.
func ruleCookieSpace(n uint32) uint32 {
	s := uint32(minRuleCookieSpace)
	for s < n {
		s *= 2
	}
	return s
}

// defaultDenyCookie is the cookie of endpoint ep's default deny in dir.
// The default denies follow the rule cookie space, two per endpoint index,
// so that they depend on the endpoint alone.
func (l *lowering) defaultDenyCookie(ep *model.Endpoint, dir direction) uint32 {
	return ruleCookieSpace(l.numRuleCookies) + 2*(l.index[ep]-1) + uint32(dir) + 1
}

// hostDefaultDenyCookie is the cookie of the host's default deny in dir:
// the two after the endpoints' default denies.
func (l *lowering) hostDefaultDenyCookie(dir direction) uint32 {
	return ruleCookieSpace(l.numRuleCookies) + 2*(EndpointIndexes-1) + uint32(dir) + 1
}

// ruleStatsSize is the number of entries of the rule_stats array: cookie 0
// (no rule), the rule cookie space, the default denies of every index and
// the host's.
func (l *lowering) ruleStatsSize() uint32 {
	return ruleCookieSpace(l.numRuleCookies) + 2*(EndpointIndexes-1) + 2 + 1
}
