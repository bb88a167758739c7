package cluster

import (
	"cmp"
	"slices"
)

// assign returns the node each group should be owned by, balancing the
// groups' weights (tunnel counts) over the eligible nodes while moving as
// few groups as it can:
//
//  1. A group keeps its owner if the owner is eligible.
//  2. The other groups, heaviest first, go to the least loaded node.
//  3. While the most loaded node has a group lighter than the difference
//     between its load and the least loaded node's, the heaviest such
//     group moves there.
//
// Every move in step 3 lowers the sum of the squared loads, so it ends;
// it ends with the spread between the most and least loaded nodes below
// the lightest group of the most loaded one. Fed its own result as
// owners, it returns it unchanged, so nodes that see the same owners agree
// and a settled cluster stays settled. Ties go to the name that sorts
// first. Nothing is assigned when no node is eligible.
func assign(weights map[string]int, eligible []string, owners map[string]string) map[string]string {
	out := make(map[string]string, len(weights))
	if len(eligible) == 0 {
		return out
	}
	load := make(map[string]int, len(eligible))
	for _, n := range eligible {
		load[n] = 0
	}
	groups := make([]string, 0, len(weights))
	for g := range weights {
		groups = append(groups, g)
	}
	// Heaviest first, then by name.
	slices.SortFunc(groups, func(a, b string) int {
		return cmp.Or(cmp.Compare(weights[b], weights[a]), cmp.Compare(a, b))
	})
	for _, g := range groups {
		if o, ok := owners[g]; ok {
			if _, elig := load[o]; elig {
				out[g] = o
				load[o] += weights[g]
			}
		}
	}
	nodes := slices.Clone(eligible)
	slices.Sort(nodes)
	least := func() string {
		best := nodes[0]
		for _, n := range nodes[1:] {
			if load[n] < load[best] {
				best = n
			}
		}
		return best
	}
	most := func() string {
		best := nodes[0]
		for _, n := range nodes[1:] {
			if load[n] > load[best] {
				best = n
			}
		}
		return best
	}
	for _, g := range groups {
		if _, ok := out[g]; !ok {
			n := least()
			out[g] = n
			load[n] += weights[g]
		}
	}
	for {
		hi, lo := most(), least()
		diff := load[hi] - load[lo]
		move := ""
		for _, g := range groups { // heaviest first: the first that fits
			if out[g] == hi && weights[g] < diff {
				move = g
				break
			}
		}
		if move == "" {
			return out
		}
		out[move] = lo
		load[hi] -= weights[move]
		load[lo] += weights[move]
	}
}
