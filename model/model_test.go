package model

// tinyModelDir is the tiny Qwen3 model shipped in testdata.
const tinyModelDir = "../testdata/tiny-qwen3"
