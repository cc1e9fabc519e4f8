module refbridge

go 1.26
