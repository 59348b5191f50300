// The Go peer of `make bench`: the stack of the Go + Sentry article's
// example (gin, otelgin, the OpenTelemetry Go SDK with its batch span
// processor and OTLP/gRPC exporter), serving `/somework` with the span tree
// of somework's own: a SERVER span from otelgin, then `somework`,
// `MiddleWork` with its three span events, and `ErrorWork`, with the same
// names and attributes. No request log line, no limits: see BENCHMARKS.md.
//
// Environment: LISTEN_ADDR, and what the SDK and its exporter read
// themselves (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER,
// OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*). The Go SDK does not read
// OTEL_SDK_DISABLED, so it is read here: with `true` no provider is
// installed, and otelgin and the handler use the global no-op tracer, as
// the Rust reference does.
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

const serviceName = "somework-peer-gin"

var tracer = otel.Tracer("somework-peer-gin")

func initTraces(ctx context.Context) (*sdktrace.TracerProvider, error) {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" {
		return nil, nil
	}
	exporter, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, err
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return provider, nil
}

func somework(c *gin.Context) {
	ctx, span := tracer.Start(c.Request.Context(), "somework")
	failed := middleWork(ctx)
	span.End()
	errorWork := "succeeded"
	if failed {
		errorWork = "failed_and_handled"
	}
	c.JSON(http.StatusOK, gin.H{
		"trace_id":   span.SpanContext().TraceID().String(),
		"slept_ms":   0,
		"error_work": errorWork,
	})
}

func middleWork(ctx context.Context) bool {
	ctx, span := tracer.Start(ctx, "MiddleWork")
	defer span.End()
	span.AddEvent("started the sleep", trace.WithAttributes(attribute.Int64("sleep.duration_ms", 0)))
	time.Sleep(0)
	span.AddEvent("completed the sleep")
	failed := errorWorkSpan(ctx)
	span.AddEvent("Out of Error!", trace.WithAttributes(attribute.Bool("error_work.failed", failed)))
	return failed
}

func errorWorkSpan(ctx context.Context) bool {
	_, span := tracer.Start(ctx, "ErrorWork")
	defer span.End()
	return false
}

func main() {
	ctx := context.Background()
	provider, err := initTraces(ctx)
	if err != nil {
		log.Fatalf("cannot start the tracer provider: %v", err)
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(gin.Recovery(), otelgin.Middleware(serviceName))
	router.GET("/somework", somework)
	server := &http.Server{Addr: addr, Handler: router}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	served := make(chan error, 1)
	go func() { served <- server.ListenAndServe() }()
	select {
	case err := <-served:
		log.Fatalf("server: %v", err)
	case <-stop:
	}
	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("server shutdown: %v", err)
	}
	if provider != nil {
		if err := provider.Shutdown(shutdownCtx); err != nil {
			log.Printf("tracer provider shutdown: %v", err)
		}
	}
}
