package verifier

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// argKind is what a helper takes in one argument register, after the
// kernel's bpf_arg_type.
type argKind uint8

const (
	argAnything        argKind = iota + 1 // any initialised value
	argConstMapPtr                        // a map loaded with a map load
	argMapKey                             // readable memory of the map's key_size
	argMapValue                           // readable memory of the map's value_size
	argMapValueWrite                      // writable memory of value_size (map_pop_elem)
	argCtx                                // the unmodified context pointer
	argCtxOrNull                          // the context, or 0
	argMemRead                            // initialised memory; its size is the next argument
	argMemReadOrNull                      // the same, or 0 with size 0
	argMemWrite                           // memory the helper fills; its size is the next argument
	argMemReadWrite                       // initialised memory the helper may rewrite
	argConstSize                          // a size in [1, bound]
	argConstSizeOrZero                    // a size in [0, bound]
	argConstAllocSize                     // a known constant size (ringbuf_reserve)
	argRingbufRelease                     // a ring buffer record from ringbuf_reserve, released by the call
)

var argKindNames = map[argKind]string{
	argAnything: "anything", argConstMapPtr: "map_ptr", argMapKey: "pointer to map key",
	argMapValue: "pointer to map value", argMapValueWrite: "pointer to map value", argCtx: "ctx",
	argCtxOrNull: "ctx or null", argMemRead: "pointer to readable memory",
	argMemReadOrNull: "pointer to readable memory or null", argMemWrite: "pointer to writable memory",
	argMemReadWrite: "pointer to memory", argConstSize: "size", argConstSizeOrZero: "size",
	argConstAllocSize: "constant size", argRingbufRelease: "ringbuf_mem",
}

// retKind is what a helper leaves in r0.
type retKind uint8

const (
	retInteger retKind = iota
	retVoid
	retMapValueOrNull
	retRingbufMemOrNull
)

// Program type sets a helper is available to.
type progSet uint8

const (
	forXDP progSet = 1 << iota
	forTC
	forSockAddr
	forAll = forXDP | forTC | forSockAddr
)

var progSets = map[ebpf.ProgramType]progSet{
	ebpf.XDP:            forXDP,
	ebpf.SchedCLS:       forTC,
	ebpf.SchedACT:       forTC,
	ebpf.CGroupSockAddr: forSockAddr,
}

// helper is a helper function's prototype as the kernel declares it
// (struct bpf_func_proto) and the program types whose get_func_proto
// offers it.
type helper struct {
	name       string
	args       []argKind
	ret        retKind
	progs      progSet
	changesPkt bool // invalidates every packet pointer (bpf_helper_changes_pkt_data)
	// maps, when set, lists the only map types the helper takes.
	maps []ebpf.MapType
}

const (
	fnMapLookupElem  = 1
	fnMapUpdateElem  = 2
	fnMapDeleteElem  = 3
	fnTailCall       = 12
	fnRingbufReserve = 131
)

var (
	any5    = []argKind{argCtx, argAnything, argAnything, argAnything, argAnything}
	redirTo = []ebpf.MapType{ebpf.DevMap, ebpf.DevMapHash, ebpf.CPUMap, ebpf.XSKMap}
)

// helpers is indexed by helper id. It covers the helpers a policy,
// service or NAT datapath at XDP, tc and cgroup socket hooks uses; a call
// to any other id is refused with a message that names it.
var helpers = map[int32]*helper{
	1:   {name: "map_lookup_elem", args: []argKind{argConstMapPtr, argMapKey}, ret: retMapValueOrNull, progs: forAll},
	2:   {name: "map_update_elem", args: []argKind{argConstMapPtr, argMapKey, argMapValue, argAnything}, progs: forAll},
	3:   {name: "map_delete_elem", args: []argKind{argConstMapPtr, argMapKey}, progs: forAll},
	5:   {name: "ktime_get_ns", progs: forAll},
	7:   {name: "get_prandom_u32", progs: forAll},
	8:   {name: "get_smp_processor_id", progs: forAll},
	9:   {name: "skb_store_bytes", args: []argKind{argCtx, argAnything, argMemRead, argConstSize, argAnything}, progs: forTC, changesPkt: true},
	10:  {name: "l3_csum_replace", args: any5, progs: forTC, changesPkt: true},
	11:  {name: "l4_csum_replace", args: any5, progs: forTC, changesPkt: true},
	12:  {name: "tail_call", args: []argKind{argCtx, argConstMapPtr, argAnything}, ret: retVoid, progs: forAll, maps: []ebpf.MapType{ebpf.ProgramArray}},
	13:  {name: "clone_redirect", args: []argKind{argCtx, argAnything, argAnything}, progs: forTC, changesPkt: true},
	14:  {name: "get_current_pid_tgid", progs: forSockAddr},
	15:  {name: "get_current_uid_gid", progs: forSockAddr},
	18:  {name: "skb_vlan_push", args: []argKind{argCtx, argAnything, argAnything}, progs: forTC, changesPkt: true},
	19:  {name: "skb_vlan_pop", args: []argKind{argCtx}, progs: forTC, changesPkt: true},
	23:  {name: "redirect", args: []argKind{argAnything, argAnything}, progs: forXDP | forTC},
	25:  {name: "perf_event_output", args: []argKind{argCtx, argConstMapPtr, argAnything, argMemRead, argConstSizeOrZero}, progs: forAll, maps: []ebpf.MapType{ebpf.PerfEventArray}},
	26:  {name: "skb_load_bytes", args: []argKind{argCtx, argAnything, argMemWrite, argConstSize}, progs: forTC},
	28:  {name: "csum_diff", args: []argKind{argMemReadOrNull, argConstSizeOrZero, argMemReadOrNull, argConstSizeOrZero, argAnything}, progs: forXDP | forTC},
	31:  {name: "skb_change_proto", args: []argKind{argCtx, argAnything, argAnything}, progs: forTC, changesPkt: true},
	32:  {name: "skb_change_type", args: []argKind{argCtx, argAnything}, progs: forTC},
	34:  {name: "get_hash_recalc", args: []argKind{argCtx}, progs: forTC},
	38:  {name: "skb_change_tail", args: []argKind{argCtx, argAnything, argAnything}, progs: forTC, changesPkt: true},
	39:  {name: "skb_pull_data", args: []argKind{argCtx, argAnything}, progs: forTC, changesPkt: true},
	40:  {name: "csum_update", args: []argKind{argCtx, argAnything}, progs: forTC},
	41:  {name: "set_hash_invalid", args: []argKind{argCtx}, ret: retVoid, progs: forTC},
	42:  {name: "get_numa_node_id", progs: forAll},
	43:  {name: "skb_change_head", args: []argKind{argCtx, argAnything, argAnything}, progs: forTC, changesPkt: true},
	44:  {name: "xdp_adjust_head", args: []argKind{argCtx, argAnything}, progs: forXDP, changesPkt: true},
	46:  {name: "get_socket_cookie", args: []argKind{argCtx}, progs: forTC | forSockAddr},
	50:  {name: "skb_adjust_room", args: []argKind{argCtx, argAnything, argAnything, argAnything}, progs: forTC, changesPkt: true},
	51:  {name: "redirect_map", args: []argKind{argConstMapPtr, argAnything, argAnything}, progs: forXDP, maps: redirTo},
	54:  {name: "xdp_adjust_meta", args: []argKind{argCtx, argAnything}, progs: forXDP, changesPkt: true},
	65:  {name: "xdp_adjust_tail", args: []argKind{argCtx, argAnything}, progs: forXDP, changesPkt: true},
	69:  {name: "fib_lookup", args: []argKind{argCtx, argMemReadWrite, argConstSize, argAnything}, progs: forXDP | forTC},
	80:  {name: "get_current_cgroup_id", progs: forSockAddr},
	87:  {name: "map_push_elem", args: []argKind{argConstMapPtr, argMapValue, argAnything}, progs: forAll, maps: []ebpf.MapType{ebpf.Queue, ebpf.Stack, ebpf.BloomFilter}},
	88:  {name: "map_pop_elem", args: []argKind{argConstMapPtr, argMapValueWrite}, progs: forAll, maps: []ebpf.MapType{ebpf.Queue, ebpf.Stack}},
	89:  {name: "map_peek_elem", args: []argKind{argConstMapPtr, argMapValueWrite}, progs: forAll, maps: []ebpf.MapType{ebpf.Queue, ebpf.Stack, ebpf.BloomFilter}},
	122: {name: "get_netns_cookie", args: []argKind{argCtxOrNull}, progs: forSockAddr},
	125: {name: "ktime_get_boot_ns", progs: forAll},
	130: {name: "ringbuf_output", args: []argKind{argConstMapPtr, argMemRead, argConstSizeOrZero, argAnything}, progs: forAll, maps: []ebpf.MapType{ebpf.RingBuf}},
	131: {name: "ringbuf_reserve", args: []argKind{argConstMapPtr, argConstAllocSize, argAnything}, ret: retRingbufMemOrNull, progs: forAll, maps: []ebpf.MapType{ebpf.RingBuf}},
	132: {name: "ringbuf_submit", args: []argKind{argRingbufRelease, argAnything}, ret: retVoid, progs: forAll},
	133: {name: "ringbuf_discard", args: []argKind{argRingbufRelease, argAnything}, ret: retVoid, progs: forAll},
	134: {name: "ringbuf_query", args: []argKind{argConstMapPtr, argAnything}, progs: forAll, maps: []ebpf.MapType{ebpf.RingBuf}},
	152: {name: "redirect_neigh", args: []argKind{argAnything, argMemReadOrNull, argConstSizeOrZero, argAnything}, progs: forTC},
	155: {name: "redirect_peer", args: []argKind{argAnything, argAnything}, progs: forTC},
	160: {name: "ktime_get_coarse_ns", progs: forAll},
	188: {name: "xdp_get_buff_len", args: []argKind{argCtx}, progs: forXDP},
	189: {name: "xdp_load_bytes", args: []argKind{argCtx, argAnything, argMemWrite, argConstSize}, progs: forXDP},
	190: {name: "xdp_store_bytes", args: []argKind{argCtx, argAnything, argMemRead, argConstSize}, progs: forXDP},
}

// mapOnlyFor lists map types that only some helpers may take, as the
// kernel's check_map_func_compatibility does from the map's side.
var mapOnlyFor = map[ebpf.MapType][]int32{
	ebpf.ProgramArray:   {fnTailCall},
	ebpf.PerfEventArray: {25},
	ebpf.RingBuf:        {130, 131, 134},
	ebpf.DevMap:         {51, fnMapLookupElem},
	ebpf.DevMapHash:     {51, fnMapLookupElem},
	ebpf.CPUMap:         {51},
	ebpf.XSKMap:         {51, fnMapLookupElem},
	ebpf.Queue:          {87, 88, 89},
	ebpf.Stack:          {87, 88, 89},
	ebpf.BloomFilter:    {87, 89},
}

// mapFuncCompatible reports whether helper id may take a map of type t.
func mapFuncCompatible(id int32, h *helper, t ebpf.MapType) bool {
	if only, ok := mapOnlyFor[t]; ok {
		found := false
		for _, f := range only {
			found = found || f == id
		}
		if !found {
			return false
		}
	}
	if h.maps != nil {
		for _, m := range h.maps {
			if m == t {
				return true
			}
		}
		return false
	}
	return true
}

func helperName(id int32) string {
	if h := helpers[id]; h != nil {
		return fmt.Sprintf("bpf_%s#%d", h.name, id)
	}
	return fmt.Sprintf("helper #%d", id)
}

// canElideNull lists the map types whose lookups with a constant key in
// range cannot fail, so the kernel (since 6.14) types the result as a map
// value without a null check.
func canElideNull(t ebpf.MapType) bool { return t == ebpf.Array || t == ebpf.PerCPUArray }
