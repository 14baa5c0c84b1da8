# lists.tcl [scale]: dicts, lists and strings in Tcl, deterministic output.
set scale [expr {$argc > 0 ? [lindex $argv 0] : 1}]
set n [expr {int(100000 * $scale)}]
set d [dict create]
for {set i 0} {$i < $n} {incr i} {
    dict set d "key[expr {$i * 7919 % $n}]" [string repeat "v$i" [expr {1 + $i % 5}]]
}
set sum 0
dict for {k v} $d { set sum [expr {($sum * 31 + [string length $k] + [string length $v]) % 1000000007}] }
puts "dict [dict size $d] $sum"
foreach k [dict keys $d "key1*"] { dict unset d $k }
puts "after unset [dict size $d]"
set l {}
for {set i 0} {$i < $n} {incr i} { lappend l [format "%08x" [expr {$i * 2654435761 % 4294967296}]] }
set s [lsort $l]
puts "sorted [lindex $s 0] [lindex $s end] [llength $s]"
set text [join $l ","]
set parts [split $text ","]
puts "split [string length $text] [llength $parts]"
set m [regsub -all {([0-9])\1} $text {<\1>} out]
puts "regsub $m [string length $out]"
array set a {}
foreach w $parts { set k [string range $w 0 2]; if {[info exists a($k)]} { incr a($k) } else { set a($k) 1 } }
puts "array [array size a]"
