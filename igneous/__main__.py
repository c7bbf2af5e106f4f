from igneous.cli import main

main()
