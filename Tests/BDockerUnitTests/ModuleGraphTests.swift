import BDTestSupport
import Foundation
import Testing

/// The module graph is declared three times: in Package.swift, by each file's imports, and in
/// docs/ARCHITECTURE.md. On Linux a module can import a sibling it does not declare (every
/// built module is on the search path), so only this test keeps the three the same.
@Suite("Module graph")
struct ModuleGraphTests {
    struct Target {
        var name: String
        var kind: String
        var path: String
        var internalDependencies: Set<String>
        var products: Set<String>
    }

    /// The targets of Package.swift: name, kind, folder and dependencies.
    static func manifest() throws -> [Target] {
        let text = try String(contentsOfFile: Repo.path("Package.swift"), encoding: .utf8)
        let start = try #require(text.range(of: "targets: ["))
        var targets: [Target] = []
        let pattern = try NSRegularExpression(pattern: #"\.(target|executableTarget|testTarget)\(name: "([^"]+)""#)
        let ns = text as NSString
        let matches = pattern.matches(in: text, range: NSRange(start.upperBound..<text.endIndex, in: text))
        for (i, match) in matches.enumerated() {
            let end = i + 1 < matches.count ? matches[i + 1].range.location : ns.length
            let block = ns.substring(with: NSRange(location: match.range.location, length: end - match.range.location))
            let kind = ns.substring(with: match.range(at: 1)), name = ns.substring(with: match.range(at: 2))
            let products = Set(Self.captures(#"\.product\(name: "([^"]+)""#, in: block))
            // Plain strings in the dependency list are targets of this package.
            var declared: Set<String> = []
            if let deps = block.range(of: "dependencies: [") {
                let list = block[deps.upperBound...].prefix { $0 != "]" }
                let withoutProducts = list.replacingOccurrences(of: #"\.product\([^)]*\)"#, with: "", options: .regularExpression)
                declared = Set(Self.captures(#""([^"]+)""#, in: withoutProducts))
            }
            let path = Self.captures(#"path: "([^"]+)""#, in: block).first
                ?? (kind == "testTarget" ? "Tests/\(name)" : "Sources/\(name)")
            targets.append(Target(name: name, kind: kind, path: path, internalDependencies: declared, products: products))
        }
        return targets
    }

    static func captures(_ pattern: String, in text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range(at: 1)) }
    }

    /// Every module the target's Swift files import.
    static func imports(of target: Target) throws -> Set<String> {
        let dir = Repo.path(target.path)
        var modules: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            modules.formUnion(captures(#"(?m)^(?:@testable |@preconcurrency )?import (\w+)"#, in: text))
        }
        return modules
    }

    @Test func everyImportIsDeclaredAndEveryDeclaredDependencyIsUsed() throws {
        let targets = try Self.manifest()
        #expect(targets.count >= 15, "Package.swift parsed to \(targets.count) targets")
        let names = Set(targets.map(\.name))
        for target in targets {
            let imported = try Self.imports(of: target)
            let importedInternal = imported.intersection(names)
            #expect(importedInternal == target.internalDependencies,
                    "\(target.name): imports \(importedInternal.sorted()) but Package.swift declares \(target.internalDependencies.sorted())")
            // Product names here are the module names (GRDB, Hummingbird, NIOCore, ...).
            #expect(target.products.isSubset(of: imported),
                    "\(target.name) declares products it never imports: \(target.products.subtracting(imported).sorted())")
            let allProducts = Set(targets.flatMap(\.products))
            #expect(imported.intersection(allProducts).isSubset(of: target.products),
                    "\(target.name) imports products it does not declare: \(imported.intersection(allProducts).subtracting(target.products).sorted())")
        }
    }

    /// docs/ARCHITECTURE.md's "Dependency graph" block: one `Target → A, B` line per target.
    @Test func theArchitectureDocumentShowsTheDeclaredGraph() throws {
        let doc = try String(contentsOfFile: Repo.path("docs/ARCHITECTURE.md"), encoding: .utf8)
        let section = try #require(doc.range(of: "### Dependency graph"), "docs/ARCHITECTURE.md has no '### Dependency graph' section")
        let after = doc[section.upperBound...]
        let open = try #require(after.range(of: "```text\n"))
        let close = try #require(after[open.upperBound...].range(of: "```"))
        var documented: [String: Set<String>] = [:]
        for line in after[open.upperBound..<close.lowerBound].split(separator: "\n") {
            let parts = line.components(separatedBy: "→")
            guard parts.count == 2 else { continue }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            let deps = parts[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && $0 != "-" }
            documented[name] = Set(deps)
        }
        let declared = try Self.manifest().filter { $0.kind != "testTarget" && $0.name != "BDTestSupport" }
        #expect(Set(documented.keys) == Set(declared.map(\.name)), "documented targets differ from Package.swift's")
        for target in declared {
            #expect(documented[target.name] == target.internalDependencies,
                    "\(target.name): docs say \(documented[target.name]?.sorted() ?? []), Package.swift \(target.internalDependencies.sorted())")
        }
    }
}
