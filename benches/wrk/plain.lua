-- wrk script for the baselines (the axum hello world): plain GETs of the command line's URL,
-- reported as report.lua prints them.
dofile("benches/wrk/report.lua")
