// Command ismd is the ISM gateway daemon: it reads the configuration, runs
// the line card in the foreground, serves ismctl on a unix socket, reloads
// on SIGHUP or `ismctl reload`, and stops on SIGINT or SIGTERM.
//
//	ismd [-config FILE] [-check] [-log-level debug|info|warn|error] [-log-format text|json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	_ "github.com/ismgw/ism/driver/dpdk"   // registers the dpdk driver (a stub without the dpdk build tag)
	_ "github.com/ismgw/ism/driver/kernel" // registers the kernel driver
	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/operator"
	"github.com/ismgw/ism/ism/vr"
)

func main() {
	path := flag.String("config", "/etc/ism/ism.conf", "configuration file")
	check := flag.Bool("check", false, "validate the configuration (and the host's addresses) and exit")
	level := flag.String("log-level", "info", "log level: debug, info, warn or error")
	format := flag.String("log-format", "text", "log format: text or json")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "ismd: bad -log-level %q\n", *level)
		os.Exit(2)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)

	cfg, err := load(*path)
	if err != nil {
		printErrors(err)
		os.Exit(1)
	}
	if *check {
		fmt.Printf("%s: configuration OK (%d tunnels)\n", *path, len(cfg.Tunnels))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sf, err := stateFile(cfg)
	if err != nil {
		printErrors(err)
		os.Exit(1)
	}
	resume := loadState(sf, log)
	g, err := ism.New(cfg, ism.Options{Logger: log, Resume: resume})
	if resume != nil {
		resume.State.Zero()
	}
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer g.Close()
	cp := startCheckpoints(cfg, sf, g, log)
	defer func() {
		if err := cp.stop(); err != nil {
			log.Error("last checkpoint", "err", err)
		}
	}()

	cn, err := startCluster(cfg, g, log)
	if err != nil {
		printErrors(err)
		os.Exit(1)
	}
	defer func() {
		if err := cn.leave(); err != nil {
			log.Error("leaving the cluster", "err", err)
		}
	}()

	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		c, err := load(*path)
		if err != nil {
			log.Error("reload refused: configuration has errors", "err", err)
			return err
		}
		if err := g.Reload(c); err != nil {
			return err
		}
		log.Info("configuration reloaded", "config", c)
		return nil
	}
	if err := operator.ServeControl(ctx, cfg.ControlSocket, daemonGateway{g, cn}, reload, log); err != nil {
		log.Error("control socket", "err", err)
		os.Exit(1)
	}
	if cfg.Metrics.IsValid() {
		if err := operator.ServeMetrics(ctx, cfg.Metrics, g, log, cn.collectors()...); err != nil {
			log.Error("metrics", "err", err)
			os.Exit(1)
		}
	}
	log.Info("ismd running", "config", cfg, "control", cfg.ControlSocket)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping")
			return
		case <-hup:
			log.Info("SIGHUP: reloading", "config", *path)
			reload()
		}
	}
}

// load parses and checks a configuration file, both stages.
func load(path string) (*config.Config, error) {
	cfg, err := config.ParseFile(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckHost(vr.Host{}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// printErrors prints every configuration error on its own line.
func printErrors(err error) {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		for _, e := range j.Unwrap() {
			fmt.Fprintln(os.Stderr, e)
		}
		return
	}
	fmt.Fprintln(os.Stderr, err)
}
