package ike

import "testing"

func TestIndexAddRemove(t *testing.T) {
	var x Index[string, int]
	x.Add("a", 1)
	x.Add("a", 2)
	x.Add("a", 2)
	x.Add("b", 3)
	if len(x["a"]) != 2 || len(x["b"]) != 1 {
		t.Fatalf("after adds: %v", x)
	}
	x.Remove("a", 1)
	x.Remove("a", 7) // not there
	x.Remove("c", 1) // no such key
	if _, ok := x["a"][2]; !ok || len(x["a"]) != 1 {
		t.Fatalf("after removing 1 from a: %v", x)
	}
	x.Remove("a", 2)
	if _, ok := x["a"]; ok {
		t.Fatalf("an empty set stays: %v", x)
	}
	if len(x) != 1 {
		t.Fatalf("keys: %v", x)
	}
}
