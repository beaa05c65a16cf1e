module github.com/loomrt/loom/bench/peers/gonum

go 1.26

require github.com/loomrt/loom v0.0.0

require gonum.org/v1/gonum v0.17.0

replace github.com/loomrt/loom => ../../..
