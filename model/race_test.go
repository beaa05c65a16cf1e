//go:build race

package model

// raceEnabled is set when the race detector, which slows the model tests
// about fivefold, is on.
const raceEnabled = true
