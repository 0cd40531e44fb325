; map jmp: prog_array, key 4 bytes {u32 slot}, value 4 bytes {u32 prog}, 2 entries, slots [1: tail_target] ; codegen.cue:70:3

; program tail_entry: SchedCLS, section "tc", 8 instructions, 0 bytes of stack ; codegen.cue:71:3
tail_entry:
     0: r6 = *(u32 *)(r1 + 0)               ; codegen.cue:73:3
     1: r2 = map[jmp] ll                    ; codegen.cue:74:3
     3: r3 = 1                              ; codegen.cue:74:3
     4: call bpf_tail_call#12               ; codegen.cue:74:3
fallback:
     5: r6 += 1000                          ; codegen.cue:75:3
     6: r0 = r6                             ; codegen.cue:75:3
     7: exit                                ; codegen.cue:75:3

; program tail_target: SchedCLS, section "tc", 2 instructions, 0 bytes of stack ; codegen.cue:76:3
tail_target:
     0: r0 = 42                             ; codegen.cue:77:3
     1: exit                                ; codegen.cue:77:3
