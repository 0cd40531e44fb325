// Package vm is ebpfc's eBPF interpreter: it runs the programs of an
// ebpf.CollectionSpec (as ebpfc's backend emits them, or as
// ebpf.LoadCollectionSpec reads them from an ELF object) without a kernel.
//
// It covers the eBPF instruction set v4 (RFC 9669): 32- and 64-bit ALU
// with signed division and modulo, sign-extending moves and loads, byte
// swaps, every atomic operation, jumps and 32-bit jumps including gotol,
// 64-bit immediate loads including map and map value references, helper
// calls, bpf-to-bpf calls with their own stack frames and tail calls (at
// most 33). Every load and store is checked against the region it targets;
// a bad access stops the run with a *Fault naming the instruction, never a
// panic.
//
// Maps are kept in memory with the kernel's semantics for hash, LRU hash,
// array, per-CPU array and hash, LPM trie, program array and ring buffer
// maps. Programs run on an XDP, tc (__sk_buff), cgroup sock_addr or plain
// memory context. A Tracer sees every instruction, helper call, map lookup
// and tail call; Snapshot and Diff compare map contents.
//
//	m, err := vm.NewMachine(spec, vm.Options{})
//	res, err := m.Run("to_default_web", vm.NewSKB(frame))
//	fmt.Println(res.Return, res.TailCalls)
package vm
