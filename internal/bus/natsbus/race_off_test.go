//go:build !race

package natsbus

const raceEnabled = false
