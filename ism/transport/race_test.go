//go:build race

package transport

// raceEnabled says the race detector is on: it changes what allocates.
const raceEnabled = true
