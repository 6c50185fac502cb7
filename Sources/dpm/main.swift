import Foundation
import Host

// The dpm command line: parse, dispatch, map errors to exit codes (0 ok, 1 failed,
// 2 usage, 3 damage found). All backup logic lives in Host.
setvbuf(stdout, nil, _IOLBF, 0)
exit(CommandRouter.run(Array(CommandLine.arguments.dropFirst())))
