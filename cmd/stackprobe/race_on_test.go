//go:build race

package main

// raceEnabled: the race detector slows rendering charts several times.
const raceEnabled = true
