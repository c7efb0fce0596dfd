// Command ramp rolls out new versions of a service safely and rolls back by itself.
package main

import (
	"os"

	"ramp.dev/ramp/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
