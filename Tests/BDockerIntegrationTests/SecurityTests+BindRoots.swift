import BDCore
import BDTestSupport
import Foundation
import Testing

/// `[credentials] bind_roots`: binds from directories besides HOME, attacked as real users.
extension SecurityTests {
    /// A tree of root's as an admin would make it for bind roots, removed at the end:
    /// `scratch/<user>` handed to each test user (for `scratch/$USER`), `shared` and `jobs`
    /// open to all like /tmp (1777: the shared root `shared`, and `jobs/$JOB_ID`), `squat`
    /// the same (for `squat/$USER`, where another user can get there first), and `open/area`
    /// below a directory anyone may rename things in (0777 without the sticky bit).
    struct RootsTree {
        let dir: TempDir
        var path: String { dir.path }
        /// The configuration lines that name the roots.
        var config: [String: String] {
            ["[credentials]\n": "[credentials]\nbind_roots = \(path)/scratch/$USER, \(path)/shared\n"
                + "  \(path)/jobs/$JOB_ID, \(path)/squat/$USER, \(path)/open/area\n"]
        }

        init(users: [PasswdEntry]) throws {
            dir = TempDir("bdocker-roots")
            for (name, mode) in [("", 0o755), ("scratch", 0o755), ("shared", 0o1777), ("jobs", 0o1777), ("squat", 0o1777),
                                 ("open", 0o777), ("open/area", 0o755)] {
                let p = name.isEmpty ? dir.path : dir.file(name)
                if !name.isEmpty { try #require(mkdir(p, 0o700) == 0) }
                chmod(p, mode_t(mode))
            }
            for user in users {
                let p = dir.file("scratch/\(user.name)")
                try #require(mkdir(p, 0o700) == 0 && chown(p, uid_t(user.uid), gid_t(user.gid)) == 0)
            }
        }
    }

    @Test func aUserBindsTheirOwnDirectoriesFromBindRoots() async throws {
        let user = try testUser()
        let roots = try RootsTree(users: [user])
        try await ContainerCommandTests().withNode(replacing: roots.config) { node in
            let job = try await node.configure(user)
            let mine = "\(roots.path)/scratch/\(user.name)", shared = "\(roots.path)/shared/\(user.name)-data"
            let jobDir = "\(roots.path)/jobs/\(job)"
            let made = try await Self.asUser(user, """
                mkdir \(mine)/data && echo scratch > \(mine)/data/f && mkdir \(shared) && echo shared > \(shared)/f \
                && mkdir \(jobDir) && echo job > \(jobDir)/f
                """)
            try #require(made.status == 0, "\(made.stderr)")
            // Below a personal root, the personal root itself, a directory of the user's in a
            // shared root, the job's own directory; HOME as before.
            let home = node.userDir(user, "roots")
            defer { try? FileManager.default.removeItem(atPath: home) }
            let r = try await node.bdocker(user, job, ["run", "-v", "\(mine)/data:/a", "-v", "\(mine):/b:ro", "-v", "\(shared):/c",
                                                       "-v", "\(jobDir):/d", "-v", "\(home):/h", node.image, "sh", "-c",
                                                       "cat /a/f /b/data/f /c/f /d/f && touch /c/new /h/new && ! touch /b/ro 2>/dev/null"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "scratch\nscratch\nshared\njob\n", "\(r.stdout)")
            var st = stat()
            #expect(stat("\(shared)/new", &st) == 0 && Int(st.st_uid) == user.uid, "the container's file is the user's")
            #expect(FileManager.default.fileExists(atPath: "\(home)/new"))
            #expect(!FileManager.default.fileExists(atPath: "\(mine)/ro"), "a :ro bind from a root was writable")
        }
    }

    @Test func bindRootsRefuseOthersFilesSharedRootsLinksAndEverythingOutside() async throws {
        let user = try testUser(), other = try testUser(1)
        let roots = try RootsTree(users: [user, other])
        let (secretDir, _) = try Self.rootSecret()
        try await ContainerCommandTests().withNode(replacing: roots.config) { node in
            let job = try await node.configure(user)
            let mine = "\(roots.path)/scratch/\(user.name)", shared = "\(roots.path)/shared"
            // The other user's directory in the shared root, and a squat on the user's personal root.
            let theirs = "\(shared)/\(other.name)-data"
            let squat = try await Self.asUser(other, "mkdir \(theirs) && echo theirs > \(theirs)/f && mkdir \(roots.path)/squat/\(user.name)")
            try #require(squat.status == 0, "\(squat.stderr)")
            // Root's directory in the shared root, holding a secret.
            let rootsOwn = "\(shared)/root-data"
            try #require(mkdir(rootsOwn, 0o700) == 0)
            _ = FileManager.default.createFile(atPath: rootsOwn + "/secret", contents: Data("TOPSECRET\n".utf8))
            // The user's own links to root's secret, below a personal root and in the shared root.
            let links = try await Self.asUser(user, "ln -s \(secretDir.path) \(mine)/link && ln -s \(secretDir.path) \(shared)/\(user.name)-link")
            try #require(links.status == 0, "\(links.stderr)")

            let hidden = "does not exist or is not yours"
            let refusals: [(String, String)] = [
                (theirs, hidden), (theirs + "/f", hidden), ("\(shared)/nothing-here", hidden),
                (rootsOwn, hidden), (rootsOwn + "/secret", hidden),
                (shared, "is the shared bind root"), (shared + "/", "is the shared bind root"),
                ("\(roots.path)/scratch/\(other.name)", "outside your HOME"), ("\(roots.path)/scratch", "outside your HOME"),
                ("\(roots.path)/squat/\(user.name)", "must be a directory of yours or root's"),
                ("\(roots.path)/squat/\(user.name)/x", "must be a directory of yours or root's"),
                ("\(mine)/link", "symbolic link"), ("\(mine)/link/secret", "symbolic link"),
                ("\(shared)/\(user.name)-link", "symbolic link"),
                ("\(roots.path)/open/area/x", "is not usable on this node"),
                (secretDir.path, "outside your HOME"), ("/etc", "outside your HOME"),
                ("\(mine)/../\(other.name)", "may not contain '..'"),
            ]
            var answers: [String: String] = [:]
            for (source, reason) in refusals {
                let r = try await node.bdocker(user, job, ["run", "-v", "\(source):/x", node.image, "cat", "/x/f", "/x/secret"])
                #expect(r.status != 0 && r.stderr.contains(reason), "\(source): \(r.stderr)")
                #expect(!r.stdout.contains("SECRET") && !r.stdout.contains("theirs"), "\(source): \(r.stdout)")
                answers[source] = r.stderr
            }
            // Somebody else's, root's and nothing at all read the same: nothing to learn from the answer.
            let words = { (source: String) in answers[source]?.replacingOccurrences(of: source, with: "P") }
            #expect(words(theirs) != nil && words(theirs) == words("\(shared)/nothing-here") && words(theirs) == words(rootsOwn))
            // The refusal of a path outside says where binds may come from.
            let outside = answers["/etc"] ?? ""
            #expect(outside.contains(mine) && outside.contains("your directories in \(shared)")
                    && outside.contains("\(roots.path)/jobs/\(job)") && outside.contains(user.home), "\(outside)")
        }
    }

    @Test func swappingASourceBelowABindRootReachesNothingOfRoots() async throws {
        let user = try testUser()
        let roots = try RootsTree(users: [user])
        let (secretDir, _) = try Self.rootSecret()
        try await ContainerCommandTests().withNode(replacing: roots.config) { node in
            let job = try await node.configure(user)
            let personal = "\(roots.path)/scratch/\(user.name)/d", shared = "\(roots.path)/shared/\(user.name)-d"
            let up = "\(user.home)/bdtest-roots-up.txt", got = "\(user.home)/bdtest-roots-got"
            defer { unlink(up); unlink(got) }
            let made = try await Self.asUser(user, "mkdir \(personal) \(shared) && echo mine > \(up)")
            try #require(made.status == 0, "\(made.stderr)")
            let run = try await node.bdocker(user, job, ["run", "-d", "-v", "\(personal):/x", "-v", "\(shared):/y", node.image,
                                                         "sh", "-c", "ls /x /y; sleep 60"])
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64, "\(run.stderr)")
            // Both sources swapped for links to root's directory once the container holds them.
            let swap = try await Self.asUser(user, """
                mv \(personal) \(personal).old && ln -s \(secretDir.path) \(personal) \
                && mv \(shared) \(shared).old && ln -s \(secretDir.path) \(shared)
                """)
            try #require(swap.status == 0, "\(swap.stderr)")
            for dir in ["/x", "/y"] {
                #expect(try await node.bdocker(user, job, ["cp", "\(id):\(dir)/secret", got]).status != 0)
                #expect(!FileManager.default.fileExists(atPath: got), "root's secret came out through \(dir)")
            }
            let into = try await node.bdocker(user, job, ["cp", up, "\(id):/y/"])
            #expect(into.status == 0, "\(into.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: secretDir.path) == ["secret"])
            #expect(FileManager.default.fileExists(atPath: "\(shared).old/bdtest-roots-up.txt"), "the copy missed the user's directory")
            // Restarted, the container still has the user's own directories.
            #expect(try await node.bdocker(user, job, ["stop", id]).status == 0)
            #expect(try await node.bdocker(user, job, ["start", id]).status == 0)
            var logs = try await node.bdocker(user, job, ["logs", id])
            _ = try await eventually {
                logs = try await node.bdocker(user, job, ["logs", id])
                return logs.stdout.contains("bdtest-roots-up.txt")
            }
            #expect(logs.stdout.contains("bdtest-roots-up.txt") && !logs.stdout.contains("secret"), "\(logs.stdout)")
            #expect(try await node.bdocker(user, job, ["rm", "-f", id]).status == 0)
            let stages = (try? FileManager.default.contentsOfDirectory(atPath: node.config.settings.server.bindStaging)) ?? []
            #expect(stages.isEmpty, "stages left: \(stages)")
        }
    }
}
