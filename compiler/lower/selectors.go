package lower

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// selectorCache resolves peer selectors and entities to the identities they
// select. A selector is evaluated once per distinct (selector, namespace
// scope) over the identities — not the endpoints — of the config, using an
// index from label to identities so that a matchLabels selector looks only
// at identities carrying one of its labels.
type selectorCache struct {
	ids     *identities
	results map[string][]uint32
	// scoped holds the selector and scope of each endpointPeers result,
	// so that a new identity can be added to the results it belongs to.
	scoped map[string]scopedSelector
	// rules holds the peers of each rule of each policy (rulePeers). A
	// change to the identities clears it.
	rules    map[policyRule][]uint32
	byLabel  map[string][]*identity // "key=value" → endpoint identities
	endpoint []*identity            // every endpoint identity
}

// policyRule is a rule of a policy: the namespace a rule's selectors are
// confined to comes from its policy.
type scopedSelector struct {
	sel   *model.Selector
	scope string
}

type policyRule struct {
	p *model.Policy
	r *model.Rule
}

func newSelectorCache(ids *identities) *selectorCache {
	c := &selectorCache{ids: ids, results: make(map[string][]uint32), scoped: make(map[string]scopedSelector), rules: make(map[policyRule][]uint32), byLabel: make(map[string][]*identity)}
	for _, id := range ids.all {
		if id.class != classEndpoint {
			continue
		}
		c.endpoint = append(c.endpoint, id)
		for k, v := range id.labels {
			c.byLabel[k+"="+v] = append(c.byLabel[k+"="+v], id)
		}
	}
	return c
}

// selects reports whether policy p's endpointSelector selects identity id
// (docs/policy.md, "How policies combine").
func selectsIdentity(p *model.Policy, id *identity) bool {
	sel := p.EndpointSelector
	if sel == nil || id.class != classEndpoint {
		return false
	}
	if !p.ClusterWide && p.Namespace != id.namespace {
		return false
	}
	return matchesIdentity(sel, "", id)
}

// matchesIdentity reports whether selector s matches endpoint identity id.
// scope, when not empty, is the namespace a selector without a namespace
// restriction is confined to (that of a namespaced policy).
func matchesIdentity(s *model.Selector, scope string, id *identity) bool {
	if s.Namespaces != nil {
		if !s.Namespaces.Matches(id.nsLabels) {
			return false
		}
	} else if scope != "" && id.namespace != scope {
		return false
	}
	return s.Matches(id.labels)
}

// endpointPeers returns the identities that peer selector s of policy p
// selects, sorted.
func (c *selectorCache) endpointPeers(p *model.Policy, s *model.Selector) []uint32 {
	scope := ""
	if !p.ClusterWide && s.Namespaces == nil {
		scope = p.Namespace
	}
	key := scope + "\x00" + selectorKey(s)
	if r, ok := c.results[key]; ok {
		return r
	}
	candidates := c.endpoint
	for k, v := range s.MatchLabels {
		if l := c.byLabel[k+"="+v]; len(l) < len(candidates) {
			candidates = l
		}
	}
	r := []uint32{}
	for _, id := range candidates {
		if matchesIdentity(s, scope, id) {
			r = append(r, id.id)
		}
	}
	slices.Sort(r)
	c.results[key] = r
	c.scoped[key] = scopedSelector{s, scope}
	return r
}

// addEndpointIdentity adds a new endpoint identity to the index and to
// every cached result that selects it, as if the cache had been built
// with it: the cluster entity and the endpoint selectors that match it.
func (c *selectorCache) addEndpointIdentity(id *identity) {
	insert := func(list []*identity) []*identity {
		i, _ := slices.BinarySearchFunc(list, id.id, func(x *identity, n uint32) int { return cmp.Compare(x.id, n) })
		return slices.Insert(list, i, id)
	}
	c.endpoint = insert(c.endpoint)
	for k, v := range id.labels {
		c.byLabel[k+"="+v] = insert(c.byLabel[k+"="+v])
	}
	add := func(key string) {
		r := c.results[key]
		i, _ := slices.BinarySearch(r, id.id)
		c.results[key] = slices.Insert(slices.Clip(r), i, id.id)
	}
	for key, ss := range c.scoped {
		if matchesIdentity(ss.sel, ss.scope, id) {
			add(key)
		}
	}
	if _, ok := c.results["entity\x00"+string(model.EntityCluster)]; ok {
		add("entity\x00" + string(model.EntityCluster))
	}
}

// entityPeers returns the identities an entity stands for, sorted.
func (c *selectorCache) entityPeers(e model.Entity) []uint32 {
	key := "entity\x00" + string(e)
	if r, ok := c.results[key]; ok {
		return r
	}
	var r []uint32
	switch e {
	case model.EntityAll:
		r = []uint32{IdentityAny}
	case model.EntityHost:
		r = []uint32{IdentityHost}
	case model.EntityRemoteNode:
		r = []uint32{IdentityRemoteNode}
	case model.EntityKubeAPIServer:
		r = []uint32{IdentityKubeAPIServer}
	case model.EntityWorld:
		r = []uint32{IdentityWorld, IdentityWorldIPv4, IdentityWorldIPv6}
		for _, id := range c.ids.prefixes {
			if id.class == classWorld {
				r = append(r, id.id)
			}
		}
	case model.EntityCluster:
		r = []uint32{IdentityHost, IdentityUnmanaged, IdentityRemoteNode, IdentityKubeAPIServer}
		for _, id := range c.ids.all {
			if id.class == classEndpoint || id.class == classUnmanaged {
				r = append(r, id.id)
			}
		}
	}
	slices.Sort(r)
	c.results[key] = r
	return r
}

// selectorKey is a canonical string for a selector.
func selectorKey(s *model.Selector) string {
	var b strings.Builder
	writeSelector(&b, s)
	return b.String()
}

func writeSelector(b *strings.Builder, s *model.Selector) {
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteByte('{')
	for _, k := range keys {
		fmt.Fprintf(b, "%q=%q,", k, s.MatchLabels[k])
	}
	exprs := make([]string, 0, len(s.MatchExpressions))
	for _, e := range s.MatchExpressions {
		vals := slices.Clone(e.Values)
		slices.Sort(vals)
		exprs = append(exprs, fmt.Sprintf("%q %s %q", e.Key, e.Operator, vals))
	}
	slices.Sort(exprs)
	for _, e := range exprs {
		b.WriteString(e)
		b.WriteByte(',')
	}
	if s.Namespaces != nil {
		b.WriteString("ns:")
		writeSelector(b, s.Namespaces)
	}
	b.WriteByte('}')
}
