// Command memory-hog allocates N MiB, touches every page so the kernel really hands it over,
// and holds it until SIGTERM/SIGINT: above its container's memory limit the kernel OOM-kills
// it, under the limit it stays up. usage: memory-hog MIB [STEP_MIB]
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const mib = 1 << 20

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: memory-hog MIB [STEP_MIB]")
		os.Exit(2)
	}
	total, err := strconv.Atoi(os.Args[1])
	if err != nil || total < 0 {
		fmt.Fprintf(os.Stderr, "memory-hog: MIB must be a whole number, not %q\n", os.Args[1])
		os.Exit(2)
	}
	step := 8
	if len(os.Args) > 2 {
		if step, err = strconv.Atoi(os.Args[2]); err != nil || step <= 0 {
			fmt.Fprintf(os.Stderr, "memory-hog: STEP_MIB must be a positive number, not %q\n", os.Args[2])
			os.Exit(2)
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var held [][]byte
	for got := 0; got < total; {
		n := min(step, total-got)
		chunk := make([]byte, n*mib)
		for i := 0; i < len(chunk); i += 4096 {
			chunk[i] = 1
		}
		held = append(held, chunk)
		got += n
		fmt.Printf("memory-hog: holding %d MiB\n", got)
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("memory-hog: holding %d MiB until stopped\n", total)
	<-stop
	fmt.Printf("memory-hog: stopped, released %d chunks\n", len(held))
}
