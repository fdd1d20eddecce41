/// docker takes its connection options before the command (`docker -H unix:///x ps`); bdocker's
/// commands take them after it. Moving them lets both orders work.
public enum GlobalOptions {
    /// Options that take a value and may come before the command.
    static let withValue: Set<String> = ["-H", "--host", "--config"]

    /// `[-H X] [--config Y] COMMAND REST...` → `COMMAND -H X --config Y REST...`; anything else
    /// unchanged. Recognises `-H X`, `-HX`, `--host X`, `--host=X`, `--config X`, `--config=X`.
    public static func movedAfterCommand(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if withValue.contains(argument), i + 1 < arguments.count {
                leading += [argument, arguments[i + 1]]
                i += 2
            } else if argument.hasPrefix("--host=") || argument.hasPrefix("--config=")
                        || (argument.hasPrefix("-H") && argument.count > 2 && !argument.hasPrefix("--")) {
                leading.append(argument)
                i += 1
            } else {
                break
            }
        }
        guard !leading.isEmpty, i < arguments.count, !arguments[i].hasPrefix("-") else { return arguments }
        return [arguments[i]] + leading + arguments[(i + 1)...]
    }
}
