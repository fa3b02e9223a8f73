//go:build tools

// Package tools records the commands this wrapper module builds, so `go mod tidy` keeps them.
package tools

import (
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
	_ "github.com/prometheus/alertmanager/cmd/amtool"
)
