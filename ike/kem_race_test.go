//go:build race

package ike

// raceEnabled shortens the accumulated ML-KEM vectors under the race
// detector, which makes them twenty times slower.
const raceEnabled = true
