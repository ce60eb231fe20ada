from skymesh.cli import main

main()
